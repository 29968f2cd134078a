#!/usr/bin/env python3
"""float64 reference outputs of the tiny GPT-2 (scripts/fetch-model.sh gpt2-tiny).

Regenerate (from the repository root; the model and the venv are created when missing):

    "$(scripts/fetch-model.sh --python | tail -n 1)" \\
        scripts/reference/make-gpt2-reference.py \\
        --model "$(scripts/fetch-model.sh gpt2-tiny | tail -n 1)" \\
        --out Tests/VeilModelsTests/Data/gpt2-tiny-reference.json

The venv (${VEIL_CACHE:-~/.cache/veil}/venvs/models) has numpy 2.4.6, safetensors 0.8.0 and
tokenizers 0.23.3; no torch. Runs in well under a second of compute.

The model is a plain numpy float64 version of Hugging Face's GPT2LMHeadModel forward pass
(eval mode, no dropout, no past key/values), computed the way transformers does it:

  weights   read from model.safetensors as float32, then cast to float64.
  embed     x = wte[ids] + wpe[0..T-1]
  block     h = x + attn(ln_1(x));  out = h + mlp(ln_2(h))
  LayerNorm (x - mean) / sqrt(var + eps) * weight + bias, biased variance, eps from config.json
  attn      qkv = a @ c_attn.weight + c_attn.bias (Conv1D, weight [in, out]); split the last
            axis into q, k, v (d each), each into n_head heads of d / n_head;
            scores = q @ k^T / sqrt(head_dim); causal mask: future positions are set to
            finfo(float64).min (as transformers' eager path does); softmax over the last axis
            (max subtracted first); @ v; heads merged back; @ c_proj.weight + c_proj.bias
  mlp       gelu_new(a @ c_fc.weight + c_fc.bias) @ c_proj.weight + c_proj.bias, with
            gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  final     ln_f;  logits = hidden @ wte^T (LM head tied to wte)

Writes --out, a JSON object:
  model       folder name, sha256 of model.safetensors, the config values used
  versions    Python and library versions
  notes       what the fields mean (also below)
  cases       [{"name", "text", "ids", "hidden_last", "logits_last_sample", "argmax_last",
               "top2_margin", "hidden_all_checksum", "hidden_all_abs_sum",
               "hidden_all_weighted_sum"}]
    ids                  GPT-2 token ids of text (tokenizers, tokenizer.json of the folder,
                         add_special_tokens=False); also hard-coded below and checked.
    hidden_last          the 64 values of the final (post-ln_f) hidden state, last position.
    logits_last_sample   [[id, logit], ...] at the last position: ids 0..49 in order, then the
                         50 top-scoring ids, best first (ties: lower id first). An id can occur
                         in both parts.
    argmax_last          greedy next token at the last position (lowest id on a tie).
    top2_margin          best logit minus second-best logit at the last position.
    hidden_all_checksum  sum over all positions and dims of the final hidden states. NB: ln_f
                         has weight 1 and bias 0 in this checkpoint, so every position's row
                         has mean 0 and this sum is 0 up to rounding (~1e-14): a test can only
                         check it with an absolute tolerance. The two sums below are the
                         informative ones.
    hidden_all_abs_sum       sum over t, j of |h[t, j]|
    hidden_all_weighted_sum  sum over t, j of h[t, j] * (t + 1) * (j + 1)  (t, j from 0)
  greedy_16   {"prompt_name", "prompt_ids", "ids", "margins", "top_logits", "text"}: 16
              greedy steps from the second prompt, each recomputing the full prefix (no KV
              cache); ids are the 16 new tokens; margins[i] is the top-two logit gap and
              top_logits[i] the best logit at step i; text is their decode. With these random
              weights and the tied head the greedy ids repeat one token (24272, " Tottenham")
              16 times; margins and top_logits still change at every step, so they are what
              catches position or cache errors.
Floats are written as Python reprs (shortest round-trip float64).
"""

import argparse
import hashlib
import json
import math
import os
import platform
from importlib import metadata

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

# (name, text, ids as checked with tokenizers 0.23.3 and the GPT-2 tokenizer.json)
CASES = [
    ("hello", "Hello, my dog is cute", [15496, 11, 616, 3290, 318, 13779]),
    ("france", " The capital of France is", [383, 3139, 286, 4881, 318]),
    ("fox40",
     "The quick brown fox jumps over the lazy dog, but the lazy dog doesn't care: it's been "
     "sleeping since 9:30 a.m. and won't wake up until dinner at seven.",
     [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 11, 475, 262, 16931, 3290, 1595,
      470, 1337, 25, 340, 338, 587, 11029, 1201, 860, 25, 1270, 257, 13, 76, 13, 290, 1839,
      470, 7765, 510, 1566, 8073, 379, 3598, 13]),
]
GREEDY_PROMPT = "france"
GREEDY_STEPS = 16
SAMPLE_LOW = 50   # logits of ids 0..SAMPLE_LOW-1
SAMPLE_TOP = 50   # logits of the SAMPLE_TOP best ids


class GPT2:
    def __init__(self, folder):
        with open(os.path.join(folder, "config.json")) as f:
            self.cfg = json.load(f)
        c = self.cfg
        if c["activation_function"] != "gelu_new":
            raise SystemExit(f"unsupported activation {c['activation_function']}")
        if not c.get("scale_attn_weights", True) or c.get("scale_attn_by_inverse_layer_idx") \
                or c.get("reorder_and_upcast_attn"):
            raise SystemExit("unsupported attention options in config.json")
        self.d = c["n_embd"]
        self.n_head = c["n_head"]
        self.n_layer = c["n_layer"]
        self.eps = c["layer_norm_epsilon"]
        raw = load_file(os.path.join(folder, "model.safetensors"))
        for k, v in raw.items():
            if v.dtype != np.float32:
                raise SystemExit(f"{k}: expected float32, got {v.dtype}")
        self.w = {k: v.astype(np.float64) for k, v in raw.items()}

    def layer_norm(self, x, prefix):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as torch LayerNorm
        return (x - mean) / np.sqrt(var + self.eps) * self.w[prefix + ".weight"] \
            + self.w[prefix + ".bias"]

    def conv1d(self, x, prefix):
        return x @ self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    @staticmethod
    def gelu_new(x):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    def attn(self, x, prefix):
        t, d = x.shape
        hd = d // self.n_head
        qkv = self.conv1d(x, prefix + ".c_attn")
        q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
        heads = lambda a: a.reshape(t, self.n_head, hd).transpose(1, 0, 2)  # [H, T, hd]
        q, k, v = heads(q), heads(k), heads(v)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)  # [H, T, T]
        causal = np.tril(np.ones((t, t), dtype=bool))
        scores = np.where(causal, scores, np.finfo(np.float64).min)
        scores = scores - scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p = p / p.sum(axis=-1, keepdims=True)
        out = (p @ v).transpose(1, 0, 2).reshape(t, d)
        return self.conv1d(out, prefix + ".c_proj")

    def forward(self, ids):
        """Final (post-ln_f) hidden states [T, d] and logits [T, vocab]."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or len(ids) == 0 or len(ids) > self.cfg["n_positions"]:
            raise ValueError("need 1..n_positions ids")
        x = self.w["wte.weight"][ids] + self.w["wpe.weight"][np.arange(len(ids))]
        for i in range(self.n_layer):
            p = f"h.{i}"
            x = x + self.attn(self.layer_norm(x, p + ".ln_1"), p + ".attn")
            m = self.gelu_new(self.conv1d(self.layer_norm(x, p + ".ln_2"), p + ".mlp.c_fc"))
            x = x + self.conv1d(m, p + ".mlp.c_proj")
        h = self.layer_norm(x, "ln_f")
        return h, h @ self.w["wte.weight"].T


def ranked(logits):
    """Ids by descending logit, ties broken by lower id."""
    return np.lexsort((np.arange(len(logits)), -logits))


def case_record(model, name, text, ids):
    h, logits = model.forward(ids)
    last = logits[-1]
    order = ranked(last)
    t_idx = np.arange(h.shape[0], dtype=np.float64)[:, None] + 1.0
    j_idx = np.arange(h.shape[1], dtype=np.float64)[None, :] + 1.0
    sample = [[i, float(last[i])] for i in range(SAMPLE_LOW)]
    sample += [[int(i), float(last[i])] for i in order[:SAMPLE_TOP]]
    return {
        "name": name,
        "text": text,
        "ids": [int(i) for i in ids],
        "hidden_last": [float(v) for v in h[-1]],
        "logits_last_sample": sample,
        "argmax_last": int(order[0]),
        "top2_margin": float(last[order[0]] - last[order[1]]),
        "hidden_all_checksum": float(h.sum()),
        "hidden_all_abs_sum": float(np.abs(h).sum()),
        "hidden_all_weighted_sum": float((h * t_idx * j_idx).sum()),
    }


def greedy(model, prompt, steps):
    ids = list(prompt)
    new, margins, tops = [], [], []
    for _ in range(steps):
        _, logits = model.forward(ids)
        order = ranked(logits[-1])
        new.append(int(order[0]))
        margins.append(float(logits[-1][order[0]] - logits[-1][order[1]]))
        tops.append(float(logits[-1][order[0]]))
        ids.append(int(order[0]))
    return new, margins, tops


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="gpt2-tiny folder (fetch-model.sh gpt2-tiny)")
    ap.add_argument("--out", required=True, help="output JSON path")
    a = ap.parse_args()

    model = GPT2(a.model)
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    cases = []
    for name, text, ids in CASES:
        got = tok.encode(text, add_special_tokens=False).ids
        if got != ids:
            raise SystemExit(f"{name}: tokenizer gives {got}, expected {ids}")
        cases.append(case_record(model, name, text, ids))

    prompt = next(ids for name, _, ids in CASES if name == GREEDY_PROMPT)
    g_ids, g_margins, g_tops = greedy(model, prompt, GREEDY_STEPS)

    cfg = model.cfg
    out = {
        "model": {
            "name": os.path.basename(os.path.normpath(a.model)),
            "made_by": "scripts/fetch-model.sh gpt2-tiny (scripts/make-tiny-gpt2.py)",
            "model_safetensors_sha256": sha256(os.path.join(a.model, "model.safetensors")),
            "config": {k: cfg[k] for k in ("n_embd", "n_layer", "n_head", "n_positions",
                                           "vocab_size", "layer_norm_epsilon",
                                           "activation_function", "tie_word_embeddings")},
        },
        "generator": "scripts/reference/make-gpt2-reference.py (numpy float64 GPT2LMHeadModel)",
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "safetensors": metadata.version("safetensors"),
            "tokenizers": metadata.version("tokenizers"),
        },
        "notes": [
            "float64 forward pass of Hugging Face GPT2LMHeadModel; weights float32 cast to "
            "float64; see the docstring of the generator for the exact arithmetic.",
            "logits_last_sample: [id, logit] for ids 0..49, then the 50 best ids, best first.",
            "argmax ties go to the lower id; top2_margin = best - second-best logit.",
            "hidden_all_checksum is ~0 by construction (ln_f weight 1, bias 0: each row has "
            "mean 0); compare it with an absolute tolerance. hidden_all_abs_sum = sum |h|; "
            "hidden_all_weighted_sum = sum h[t,j]*(t+1)*(j+1).",
            "greedy_16: full-prefix recomputation each step; margins are top-two gaps, "
            "top_logits the best logit of each step (the ids repeat one token: random "
            "weights, tied head).",
        ],
        "cases": cases,
        "greedy_16": {
            "prompt_name": GREEDY_PROMPT,
            "prompt_ids": prompt,
            "ids": g_ids,
            "margins": g_margins,
            "top_logits": g_tops,
            "text": tok.decode(g_ids, skip_special_tokens=False),
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")

    for c in cases:
        print(f"{c['name']}: argmax_last {c['argmax_last']} margin {c['top2_margin']!r} "
              f"checksum {c['hidden_all_checksum']!r} abs_sum {c['hidden_all_abs_sum']!r}")
    print(f"greedy_16 ids {g_ids}")
    print(f"greedy_16 min margin {min(g_margins)!r}")
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")


if __name__ == "__main__":
    main()
