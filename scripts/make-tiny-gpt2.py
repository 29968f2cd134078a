#!/usr/bin/env python3
"""Write a tiny GPT-2 model folder: the real GPT-2 tokenizer, seeded random weights.

    python scripts/make-tiny-gpt2.py OUT --vocab encoder.json --merges vocab.bpe [--shape 124m]

Called by `scripts/fetch-model.sh gpt2-tiny` (in the venv it creates under the Veil cache);
needs numpy, safetensors and tokenizers, no torch. OUT receives:

  vocab.json, merges.txt   OpenAI's GPT-2 files, copied byte for byte (50257 tokens, 50000
                           merges; merges.txt keeps its `#version: 0.2` first line).
  tokenizer.json           the same tokenizer as `tokenizers` builds it, the way Hugging Face's
                           GPT2TokenizerFast behaves: BPE, ByteLevel pre-tokenizer (GPT-2 regex,
                           no prefix space), ByteLevel decoder and post-processor,
                           `<|endoftext|>` (50256) an added special token.
  tokenizer_config.json, special_tokens_map.json
  config.json              GPT2LMHeadModel: n_embd 64, n_layer 2, n_head 4, n_positions 128,
                           vocab 50257, gelu_new, LayerNorm eps 1e-5, tied LM head; with
                           --shape 124m GPT-2 small's shape (n_embd 768, n_layer 12, n_head 12,
                           n_positions 1024: `fetch-model.sh gpt2-124m-seeded`, ≈ 500 MB).
  model.safetensors        float32, Hugging Face GPT-2 names and layout (Conv1D weights are
                           [in, out]; Q, K, V concatenated along the output axis of c_attn).

Weights: numpy `default_rng(seed=20261203)`; every matrix and every linear bias is drawn, in
the order the tensors are listed in `tensor_shapes` below, as `rng.normal(0, 0.02, shape)`
(float64) and then cast to float32; LayerNorm weights are 1 and biases 0 (no draw). No
`lm_head.weight` (tied to `wte.weight`) and no `attn.bias` mask buffers.
"""
import argparse
import json
import os
import shutil

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

SEED = 20261203
STD = 0.02

CONFIG = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.0,
    "bos_token_id": 50256,
    "embd_pdrop": 0.0,
    "eos_token_id": 50256,
    "initializer_range": STD,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_ctx": 128,
    "n_embd": 64,
    "n_head": 4,
    "n_inner": None,
    "n_layer": 2,
    "n_positions": 128,
    "reorder_and_upcast_attn": False,
    "resid_pdrop": 0.0,
    "scale_attn_by_inverse_layer_idx": False,
    "scale_attn_weights": True,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 50257,
}


def tensor_shapes(cfg):
    """(name, shape, kind) in drawing order; kind is 'normal', 'ones' or 'zeros'."""
    d, v, p = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    out = [("wte.weight", [v, d], "normal"), ("wpe.weight", [p, d], "normal")]
    for i in range(cfg["n_layer"]):
        h = f"h.{i}."
        out += [
            (h + "ln_1.weight", [d], "ones"),
            (h + "ln_1.bias", [d], "zeros"),
            (h + "attn.c_attn.weight", [d, 3 * d], "normal"),
            (h + "attn.c_attn.bias", [3 * d], "normal"),
            (h + "attn.c_proj.weight", [d, d], "normal"),
            (h + "attn.c_proj.bias", [d], "normal"),
            (h + "ln_2.weight", [d], "ones"),
            (h + "ln_2.bias", [d], "zeros"),
            (h + "mlp.c_fc.weight", [d, 4 * d], "normal"),
            (h + "mlp.c_fc.bias", [4 * d], "normal"),
            (h + "mlp.c_proj.weight", [4 * d, d], "normal"),
            (h + "mlp.c_proj.bias", [d], "normal"),
        ]
    out += [("ln_f.weight", [d], "ones"), ("ln_f.bias", [d], "zeros")]
    return out


def random_weights(cfg, seed=SEED):
    rng = np.random.default_rng(seed=seed)
    tensors = {}
    for name, shape, kind in tensor_shapes(cfg):
        if kind == "normal":
            tensors[name] = rng.normal(0.0, STD, shape).astype(np.float32)
        elif kind == "ones":
            tensors[name] = np.ones(shape, dtype=np.float32)
        else:
            tensors[name] = np.zeros(shape, dtype=np.float32)
    return tensors


def gpt2_tokenizer(vocab_path, merges_path):
    """GPT-2's tokenizer as Hugging Face's GPT2TokenizerFast (tokenizer.json of `gpt2`) has it."""
    tok = Tokenizer(BPE.from_file(vocab_path, merges_path))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                                 use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=True)])
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--vocab", required=True, help="GPT-2 encoder.json")
    ap.add_argument("--merges", required=True, help="GPT-2 vocab.bpe")
    ap.add_argument("--shape", choices=["tiny", "124m"], default="tiny")
    a = ap.parse_args()
    if a.shape == "124m":
        CONFIG.update(n_embd=768, n_head=12, n_layer=12, n_positions=1024, n_ctx=1024)
    os.makedirs(a.out, exist_ok=True)

    shutil.copyfile(a.vocab, os.path.join(a.out, "vocab.json"))
    shutil.copyfile(a.merges, os.path.join(a.out, "merges.txt"))
    tok = gpt2_tokenizer(a.vocab, a.merges)
    if tok.get_vocab_size() != CONFIG["vocab_size"] or tok.token_to_id("<|endoftext|>") != 50256:
        raise SystemExit("unexpected GPT-2 vocabulary")
    tok.save(os.path.join(a.out, "tokenizer.json"))

    special = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>"}
    with open(os.path.join(a.out, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
        f.write("\n")
    tok_cfg = dict(special, add_prefix_space=False, model_max_length=CONFIG["n_positions"],
                   tokenizer_class="GPT2Tokenizer", clean_up_tokenization_spaces=False)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
        f.write("\n")

    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(random_weights(CONFIG), os.path.join(a.out, "model.safetensors"),
              metadata={"format": "pt"})


if __name__ == "__main__":
    main()
