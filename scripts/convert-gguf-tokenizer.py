#!/usr/bin/env python3
"""Rebuild a Hugging Face tokenizer folder from one of llama.cpp's vocab-only GGUFs.

    python scripts/convert-gguf-tokenizer.py llama-spm|llama-bpe GGUF OUT

Called by `scripts/fetch-model.sh llama2-tokenizer|llama3-tokenizer` (in the converters' venv:
gguf and tokenizers, no torch) on `vendor/llama.cpp/models/ggml-vocab-llama-{spm,bpe}.gguf`
from the PyPI sdist llama-cpp-python 0.3.36. OUT receives tokenizer.json and
tokenizer_config.json (bos/eos/unk, add_bos_token), no weights.

llama-spm (LLaMA-1/2, SentencePiece BPE, 32000 pieces with scores):
  tokenizer.json           what Llama-2's published tokenizer.json holds: normalizer
                           Sequence[Prepend("▁"), Replace(" ", "▁")], no pre-tokenizer, a BPE
                           with byte_fallback and fuse_unk, unk "<unk>", decoder
                           Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(1 left)],
                           <unk> <s> </s> as added special tokens (not normalized).
                           SentencePiece merges the adjacent pair whose joined piece has the
                           highest score; as BPE ranks that is every split of every piece into
                           two pieces of the vocabulary, ordered by the joined piece's score
                           (highest first), then its id, then the two halves' ids.
  tokenizer.metaspace.json the same vocabulary, merges and decoder in the newer layout
                           (transformers' legacy=False): no normalizer, pre-tokenizer
                           Metaspace("▁", prepend_scheme "first", split false), which adds no
                           "▁" before a text that starts with a space, nor after an added
                           token (so it does not reproduce llama.cpp's vectors: a tokenizer of
                           its own, with references of its own).
llama-bpe (LLaMA-3, byte-level BPE, 128256 tokens, 280147 merges):
  tokenizer.json           pre-tokenizer Sequence[Split(LLaMA-3's regex, Isolated),
                           ByteLevel(use_regex=false)], a BPE with ignore_merges, ByteLevel
                           decoder, the 256 control tokens (GGUF token type 3) special.

The checks that matter are in scripts/reference/make-tokenizer-references.py: each folder must
reproduce llama.cpp's 46 test vectors for its vocabulary (made with Meta's published files).
"""
import argparse
import json
import os

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        if default is not None:
            return default
        raise SystemExit(f"GGUF has no {key}")
    return f.contents()


def sentencepiece_merges(tokens, scores, types):
    """BPE ranks equivalent to SentencePiece's highest-score-first merging."""
    ids = {t: i for i, t in enumerate(tokens)}
    ranked = []
    for i, piece in enumerate(tokens):
        if types[i] != NORMAL:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                ranked.append((-scores[i], i, ids[left], ids[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def llama_spm(r, out):
    if field(r, "tokenizer.ggml.model") != "llama":
        raise SystemExit("tokenizer.ggml.model is not llama (SentencePiece)")
    tokens = list(field(r, "tokenizer.ggml.tokens"))
    scores = [float(s) for s in field(r, "tokenizer.ggml.scores")]
    types = [int(t) for t in field(r, "tokenizer.ggml.token_type")]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise SystemExit("duplicate pieces")
    for b in range(256):
        piece = f"<0x{b:02X}>"
        if types[vocab.get(piece, 0)] != BYTE:
            raise SystemExit(f"no byte piece {piece}")
    merges = sentencepiece_merges(tokens, scores, types)
    unk = tokens[int(field(r, "tokenizer.ggml.unknown_token_id"))]
    special = [AddedToken(t, special=True, normalized=False) for i, t in enumerate(tokens)
               if types[i] in (UNKNOWN, CONTROL)]

    def build(metaspace):
        tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True,
                            byte_fallback=True))
        if metaspace:
            tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                         split=False)
        else:
            tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                                   normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        tok.add_special_tokens(special)
        return tok

    build(False).save(os.path.join(out, "tokenizer.json"))
    build(True).save(os.path.join(out, "tokenizer.metaspace.json"))
    print(f"llama-spm: {len(tokens)} pieces, {len(merges)} merges", flush=True)


def llama_bpe(r, out):
    if field(r, "tokenizer.ggml.model") != "gpt2" or field(r, "tokenizer.ggml.pre") != "llama-bpe":
        raise SystemExit("not a byte-level BPE with llama-bpe pre-tokenization")
    tokens = list(field(r, "tokenizer.ggml.tokens"))
    types = [int(t) for t in field(r, "tokenizer.ggml.token_type")]
    merges = [tuple(m.split(" ")) for m in field(r, "tokenizer.ggml.merges")]
    if any(len(m) != 2 for m in merges):
        raise SystemExit("a merge is not two tokens")
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for i, t in enumerate(tokens) if types[i] in (CONTROL, USER_DEFINED)])
    tok.save(os.path.join(out, "tokenizer.json"))
    print(f"llama-bpe: {len(tokens)} tokens, {len(merges)} merges", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vocab", choices=["llama-spm", "llama-bpe"])
    ap.add_argument("gguf")
    ap.add_argument("out")
    a = ap.parse_args()
    r = gguf.GGUFReader(a.gguf)
    os.makedirs(a.out, exist_ok=True)
    (llama_spm if a.vocab == "llama-spm" else llama_bpe)(r, a.out)
    tokens = field(r, "tokenizer.ggml.tokens")
    name = lambda key: tokens[int(field(r, key))] if key in r.fields else None
    config = {
        "bos_token": name("tokenizer.ggml.bos_token_id"),
        "eos_token": name("tokenizer.ggml.eos_token_id"),
        "unk_token": name("tokenizer.ggml.unknown_token_id"),
        "add_bos_token": bool(field(r, "tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(field(r, "tokenizer.ggml.add_eos_token", False)),
        "source": f"rebuilt from llama.cpp's ggml-vocab-{a.vocab}.gguf by "
                  "scripts/convert-gguf-tokenizer.py",
    }
    with open(os.path.join(a.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in config.items() if v is not None}, f, indent=2,
                  ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
