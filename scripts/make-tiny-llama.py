#!/usr/bin/env python3
"""Write a tiny LLaMA model folder: SmolLM2's real tokenizer, seeded random weights.

    python scripts/make-tiny-llama.py OUT --tokenizer-from SMOLLM2_FOLDER [--untied]

Called by `scripts/fetch-model.sh llama-tiny` (and `llama-tiny-untied`, which passes --untied)
in the venv it creates under the Veil cache; needs numpy and safetensors, no torch. OUT
receives:

  tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.json, merges.txt
                           copied byte for byte from the SmolLM2-135M-Instruct folder
                           (`scripts/fetch-model.sh smollm2`): 49152 tokens, ChatML template.
                           NB tokenizer_config.json keeps SmolLM2's model_max_length 8192;
                           this model has only 128 positions.
  config.json              LlamaForCausalLM: hidden 64, intermediate 96, 2 layers, 4 query
                           heads and 2 key/value heads (GQA) of head_dim 16, RMSNorm eps 1e-5,
                           RoPE theta 10000 (no scaling), 128 positions, SiLU (SwiGLU MLP), no
                           biases, vocab 49152; tie_word_embeddings true (false with --untied).
  model.safetensors        float32, Hugging Face LLaMA names, nn.Linear layout [out, in]:
                           model.embed_tokens.weight [V, d]; per layer N
                           model.layers.N.self_attn.{q,k,v,o}_proj.weight,
                           model.layers.N.mlp.{gate,up,down}_proj.weight,
                           model.layers.N.{input,post_attention}_layernorm.weight;
                           model.norm.weight; with --untied also lm_head.weight [V, d].

Weights: numpy `default_rng(seed=20261213)`; the tensors are drawn in the order
`tensor_shapes` lists them, each as float64 and then cast to float32:

  embed_tokens, lm_head    normal(0, 0.5)
  q_proj, k_proj           normal(0, 1.5 / sqrt(in))  (attention scores with a std of ~2)
  v_proj, gate_proj, up_proj
                           normal(0, 1 / sqrt(in))
  o_proj, down_proj        normal(0, 4 / sqrt(in))    (each block's output is a few times
                                                       the embedding: the residual stream is
                                                       not dominated by the input token)
  RMSNorm weights          uniform(0.8, 1.2)

lm_head.weight is drawn last, so the tied and the untied folders share every other tensor
bit for bit. The scales are chosen so that greedy decoding with the tied head does not just
repeat the last input token (as gpt2-tiny's does): see scripts/reference/make-llama-reference.py
for the logit spreads, top-two margins and greedy continuations this gives. The seed was
picked from 20261204..20261244 as one whose reference cases and 16-step greedy runs (tied and
untied) have no top-two logit margin under 0.09, and whose tied greedy run has no token
repeated back to back.
"""
import argparse
import json
import math
import os
import shutil

import numpy as np
from safetensors.numpy import save_file

SEED = 20261213
EMBED_STD = 0.5
QK_GAIN = 1.5
OUT_GAIN = 4.0
NORM_LOW, NORM_HIGH = 0.8, 1.2

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt"]

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
    "head_dim": 16,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 96,
    "max_position_embeddings": 128,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 49152,
}


def config(untied=False):
    cfg = dict(CONFIG)
    cfg["tie_word_embeddings"] = not untied
    return cfg


def tensor_shapes(cfg):
    """(name, shape, kind) in drawing order; kind is 'embed', 'qk', 'in', 'out' or 'norm'."""
    d, v, ff = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    hd, nq, nkv = cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    out = [("model.embed_tokens.weight", [v, d], "embed")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", [d], "norm"),
            (p + "self_attn.q_proj.weight", [nq * hd, d], "qk"),
            (p + "self_attn.k_proj.weight", [nkv * hd, d], "qk"),
            (p + "self_attn.v_proj.weight", [nkv * hd, d], "in"),
            (p + "self_attn.o_proj.weight", [d, nq * hd], "out"),
            (p + "post_attention_layernorm.weight", [d], "norm"),
            (p + "mlp.gate_proj.weight", [ff, d], "in"),
            (p + "mlp.up_proj.weight", [ff, d], "in"),
            (p + "mlp.down_proj.weight", [d, ff], "out"),
        ]
    out.append(("model.norm.weight", [d], "norm"))
    if not cfg["tie_word_embeddings"]:
        out.append(("lm_head.weight", [v, d], "embed"))
    return out


def random_weights(cfg, seed=SEED):
    rng = np.random.default_rng(seed=seed)
    gains = {"qk": QK_GAIN, "in": 1.0, "out": OUT_GAIN}
    tensors = {}
    for name, shape, kind in tensor_shapes(cfg):
        if kind == "embed":
            w = rng.normal(0.0, EMBED_STD, shape)
        elif kind == "norm":
            w = rng.uniform(NORM_LOW, NORM_HIGH, shape)
        else:
            w = rng.normal(0.0, gains[kind] / math.sqrt(shape[1]), shape)
        tensors[name] = w.astype(np.float32)
    return tensors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", required=True,
                    help="SmolLM2-135M-Instruct folder (scripts/fetch-model.sh smollm2)")
    ap.add_argument("--untied", action="store_true",
                    help="tie_word_embeddings false, with a separate lm_head.weight")
    a = ap.parse_args()
    cfg = config(a.untied)

    with open(os.path.join(a.tokenizer_from, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    n_vocab = len(tok["model"]["vocab"])
    if n_vocab != cfg["vocab_size"]:
        raise SystemExit(f"tokenizer has {n_vocab} tokens, expected {cfg['vocab_size']}")
    specials = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    if specials.get("<|im_start|>") != 1 or specials.get("<|im_end|>") != 2:
        raise SystemExit("tokenizer.json: <|im_start|>/<|im_end|> are not ids 1/2")

    os.makedirs(a.out, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(a.tokenizer_from, name), os.path.join(a.out, name))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(random_weights(cfg), os.path.join(a.out, "model.safetensors"),
              metadata={"format": "pt"})


if __name__ == "__main__":
    main()
