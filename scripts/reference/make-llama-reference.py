#!/usr/bin/env python3
"""float64 reference outputs of the tiny LLaMA (scripts/fetch-model.sh llama-tiny).

Regenerate (from the repository root; the models and the venv are created when missing):

    py="$(scripts/fetch-model.sh --python | tail -n 1)"
    "$py" scripts/reference/make-llama-reference.py \\
        --model "$(scripts/fetch-model.sh llama-tiny | tail -n 1)" \\
        --out Tests/VeilModelsTests/Data/llama-tiny-reference.json
    "$py" scripts/reference/make-llama-reference.py \\
        --model "$(scripts/fetch-model.sh llama-tiny-untied | tail -n 1)" \\
        --out Tests/VeilModelsTests/Data/llama-tiny-untied-reference.json

The venv (${VEIL_CACHE:-~/.cache/veil}/venvs/models) has numpy 2.4.6, safetensors 0.8.0 and
tokenizers 0.23.3; no torch. Runs in about a second.

The same class LLaMA is used by make-smollm2-greedy-reference.py on the real SmolLM2-135M.

The model is a plain numpy float64 version of Hugging Face's LlamaForCausalLM forward pass
(eval mode, no past key/values, pretraining_tp 1), computed the way transformers does it:

  weights   read from model.safetensors as float32, then cast to float64; nn.Linear layout,
            y = x @ W^T; no biases (attention_bias, mlp_bias false).
  embed     x = embed_tokens[ids]  (no positional embedding; RoPE inside attention)
  block     h = x + attn(input_layernorm(x));  out = h + mlp(post_attention_layernorm(h))
  RMSNorm   x / sqrt(mean(x^2) + eps) * weight  (eps = rms_norm_eps)
  attn      q = a Wq^T -> [T, H, hd], k = a Wk^T, v = a Wv^T -> [T, Hkv, hd];
            RoPE on q and k: inv_freq[i] = 1 / theta^(2i / hd) for i < hd/2 (computed as
            theta ** (arange(0, hd, 2) / hd)), angle[t] = t * inv_freq duplicated over both
            halves ([f, f]), x * cos + rotate_half(x) * sin with rotate_half(x) = [-x2, x1]
            (x1, x2 the first and second half of each head);
            GQA: query head h reads key/value head h // (H / Hkv) (transformers' repeat_kv);
            scores = q k^T / sqrt(hd), future positions set to finfo(float64).min, softmax
            (max subtracted first), @ v, heads concatenated, @ Wo^T
  mlp       down(silu(gate(a)) * up(a)), silu(z) = z / (1 + exp(-z))
  final     model.norm; logits = hidden @ embed_tokens^T when tie_word_embeddings, else
            hidden @ lm_head^T

Writes --out, a JSON object with the layout of gpt2-tiny-reference.json:
  model       folder name, sha256 of model.safetensors, the config values used
  versions    Python and library versions
  notes       what the fields mean (also below)
  cases       [{"name", "text", "ids", "hidden_last", "logits_last_sample", "argmax_last",
               "top2_margin", "hidden_all_checksum", "hidden_all_abs_sum",
               "hidden_all_weighted_sum", "logits_last_std"}]
    text, ids            SmolLM2 token ids of text (tokenizers, tokenizer.json of the folder,
                         add_special_tokens=False; the ChatML case has <|im_start|> = 1 and
                         <|im_end|> = 2 as specials), hard-coded below and checked. The
                         "high_ids" case has no text (null): hand-picked ids 40000..49151.
    hidden_last          the d values of the final (post-norm) hidden state, last position.
    logits_last_sample   [[id, logit], ...] at the last position: ids 0..9 in order, then the
                         20 top-scoring ids, best first (ties: lower id first), then the
                         last id (49151). An id can occur in more than one part.
    argmax_last          greedy next token at the last position (lowest id on a tie).
    top2_margin          best logit minus second-best logit at the last position.
    hidden_all_checksum  sum over all positions and dims of the final hidden states (not ~0
                         here: the final norm has no bias but random weights, no mean removal).
    hidden_all_abs_sum       sum over t, j of |h[t, j]|
    hidden_all_weighted_sum  sum over t, j of h[t, j] * (t + 1) * (j + 1)  (t, j from 0)
    logits_last_std      standard deviation of the last position's logits over the vocabulary
                         (how spread they are; informational).
  greedy_16   {"prompt_name", "prompt_ids", "ids", "margins", "top_logits", "text"}: 16
              greedy steps from the "france" prompt, each recomputing the full prefix (no KV
              cache); ids are the 16 new tokens; margins[i] is the top-two logit gap and
              top_logits[i] the best logit at step i; text is their decode.
  greedy_margins  the same list as greedy_16.margins (top1 - top2 at each of the 16 steps).
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

# (name, text, ids as checked with tokenizers 0.23.3 and SmolLM2's tokenizer.json)
CASES = [
    ("hello", "Hello, my dog is cute", [19556, 28, 957, 2767, 314, 25489]),
    ("france", "The capital of France is", [504, 3575, 282, 4649, 314]),
    ("fox", "The quick brown fox jumps over the lazy dog.",
     [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30]),
    ("chat", "<|im_start|>user\nHi there!<|im_end|>\n",
     [1, 4093, 198, 26843, 665, 17, 2, 198]),
    ("high_ids", None, [40000, 41234, 49151, 45678, 42000, 47777, 40001, 48888, 43210]),
]
GREEDY_PROMPT = "france"
GREEDY_STEPS = 16
SAMPLE_LOW = 10   # logits of ids 0..SAMPLE_LOW-1
SAMPLE_TOP = 20   # logits of the SAMPLE_TOP best ids


class LLaMA:
    def __init__(self, folder):
        with open(os.path.join(folder, "config.json")) as f:
            self.cfg = json.load(f)
        c = self.cfg
        if c.get("model_type") != "llama" or c.get("hidden_act", "silu") != "silu":
            raise SystemExit("not a SiLU llama config")
        if c.get("attention_bias") or c.get("mlp_bias") or c.get("rope_scaling") \
                or c.get("pretraining_tp", 1) != 1:
            raise SystemExit("unsupported llama options in config.json")
        self.d = c["hidden_size"]
        self.n_head = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads", self.n_head)
        self.hd = c.get("head_dim") or self.d // self.n_head
        self.n_layer = c["num_hidden_layers"]
        self.eps = c["rms_norm_eps"]
        self.theta = float(c["rope_theta"])
        self.tied = c.get("tie_word_embeddings", False)
        if self.n_head % self.n_kv != 0 or self.hd % 2 != 0:
            raise SystemExit("heads not divisible by kv heads, or odd head_dim")
        raw = load_file(os.path.join(folder, "model.safetensors"))
        for k, v in raw.items():
            if v.dtype != np.float32:
                raise SystemExit(f"{k}: expected float32, got {v.dtype}")
        self.w = {k: v.astype(np.float64) for k, v in raw.items()}
        del raw
        self.head = self.w["model.embed_tokens.weight"] if self.tied else self.w["lm_head.weight"]
        self.inv_freq = 1.0 / (self.theta ** (np.arange(0, self.hd, 2, dtype=np.float64)
                                              / self.hd))

    def rms_norm(self, x, name):
        return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + self.eps) * self.w[name]

    def linear(self, x, name):
        return x @ self.w[name].T

    def rope(self, x):
        """x [T, heads, hd] -> rotated, HF rotate-half convention."""
        t = x.shape[0]
        ang = np.arange(t, dtype=np.float64)[:, None] * self.inv_freq[None, :]
        ang = np.concatenate([ang, ang], axis=-1)  # [T, hd]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        half = self.hd // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rot * sin

    def attn(self, a, p):
        t = a.shape[0]
        q = self.linear(a, p + "q_proj.weight").reshape(t, self.n_head, self.hd)
        k = self.linear(a, p + "k_proj.weight").reshape(t, self.n_kv, self.hd)
        v = self.linear(a, p + "v_proj.weight").reshape(t, self.n_kv, self.hd)
        q, k = self.rope(q), self.rope(k)
        kv_of = np.arange(self.n_head) // (self.n_head // self.n_kv)  # repeat_kv
        q = q.transpose(1, 0, 2)                 # [H, T, hd]
        k = k.transpose(1, 0, 2)[kv_of]          # [H, T, hd]
        v = v.transpose(1, 0, 2)[kv_of]
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(self.hd)  # [H, T, T]
        causal = np.tril(np.ones((t, t), dtype=bool))
        scores = np.where(causal, scores, np.finfo(np.float64).min)
        scores = scores - scores.max(axis=-1, keepdims=True)
        pr = np.exp(scores)
        pr = pr / pr.sum(axis=-1, keepdims=True)
        out = (pr @ v).transpose(1, 0, 2).reshape(t, self.n_head * self.hd)
        return self.linear(out, p + "o_proj.weight")

    def mlp(self, a, p):
        g = self.linear(a, p + "gate_proj.weight")
        u = self.linear(a, p + "up_proj.weight")
        return self.linear(g / (1.0 + np.exp(-g)) * u, p + "down_proj.weight")

    def hidden(self, ids):
        """Final (post-norm) hidden states [T, d]."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or len(ids) == 0 or len(ids) > self.cfg["max_position_embeddings"]:
            raise ValueError("need 1..max_position_embeddings ids")
        x = self.w["model.embed_tokens.weight"][ids]
        for i in range(self.n_layer):
            p = f"model.layers.{i}."
            x = x + self.attn(self.rms_norm(x, p + "input_layernorm.weight"), p + "self_attn.")
            x = x + self.mlp(self.rms_norm(x, p + "post_attention_layernorm.weight"), p + "mlp.")
        return self.rms_norm(x, "model.norm.weight")

    def forward(self, ids):
        """Final hidden states [T, d] and logits [T, vocab]."""
        h = self.hidden(ids)
        return h, h @ self.head.T

    def last_logits(self, ids):
        return self.head @ self.hidden(ids)[-1]


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
    sample.append([len(last) - 1, float(last[-1])])
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
        "logits_last_std": float(last.std()),
    }


def greedy(model, prompt, steps, stop=None):
    """Greedy decoding by full recomputation; returns new ids, margins, best logits."""
    ids = list(prompt)
    new, margins, tops = [], [], []
    for _ in range(steps):
        last = model.last_logits(ids)
        order = ranked(last)
        new.append(int(order[0]))
        margins.append(float(last[order[0]] - last[order[1]]))
        tops.append(float(last[order[0]]))
        ids.append(int(order[0]))
        if stop is not None and new[-1] == stop:
            break
    return new, margins, tops


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


CONFIG_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "head_dim", "max_position_embeddings", "vocab_size",
               "rms_norm_eps", "rope_theta", "hidden_act", "tie_word_embeddings")


def versions():
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "safetensors": metadata.version("safetensors"),
        "tokenizers": metadata.version("tokenizers"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True,
                    help="llama-tiny or llama-tiny-untied folder (fetch-model.sh llama-tiny)")
    ap.add_argument("--out", required=True, help="output JSON path")
    a = ap.parse_args()

    model = LLaMA(a.model)
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    cases = []
    for name, text, ids in CASES:
        if text is not None:
            got = tok.encode(text, add_special_tokens=False).ids
            if got != ids:
                raise SystemExit(f"{name}: tokenizer gives {got}, expected {ids}")
        cases.append(case_record(model, name, text, ids))

    prompt = next(ids for name, _, ids in CASES if name == GREEDY_PROMPT)
    g_ids, g_margins, g_tops = greedy(model, prompt, GREEDY_STEPS)

    cfg = model.cfg
    folder = os.path.basename(os.path.normpath(a.model))
    out = {
        "model": {
            "name": folder,
            "made_by": f"scripts/fetch-model.sh {folder} (scripts/make-tiny-llama.py)",
            "model_safetensors_sha256": sha256(os.path.join(a.model, "model.safetensors")),
            "config": {k: cfg[k] for k in CONFIG_KEYS},
        },
        "generator": "scripts/reference/make-llama-reference.py (numpy float64 "
                     "LlamaForCausalLM)",
        "versions": versions(),
        "notes": [
            "float64 forward pass of Hugging Face LlamaForCausalLM; weights float32 cast to "
            "float64; see the docstring of the generator for the exact arithmetic (RMSNorm, "
            "rotate-half RoPE, GQA repeat_kv, SwiGLU).",
            "logits_last_sample: [id, logit] for ids 0..9, then the 20 best ids, best first, "
            "then the last id of the vocabulary.",
            "argmax ties go to the lower id; top2_margin = best - second-best logit.",
            "hidden_all_abs_sum = sum |h|; hidden_all_weighted_sum = sum h[t,j]*(t+1)*(j+1); "
            "hidden_all_checksum = sum h (the final norm has random weights and no mean "
            "removal, so it is not ~0).",
            "the high_ids case has no text: hand-picked ids from 40000 to 49151.",
            "greedy_16: full-prefix recomputation each step; margins are top-two gaps, "
            "top_logits the best logit of each step; greedy_margins repeats "
            "greedy_16.margins.",
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
        "greedy_margins": g_margins,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")

    for c in cases:
        print(f"{c['name']}: argmax_last {c['argmax_last']} margin {c['top2_margin']:.4f} "
              f"logit std {c['logits_last_std']:.3f} "
              f"max {c['logits_last_sample'][SAMPLE_LOW][1]:.3f} "
              f"abs_sum {c['hidden_all_abs_sum']:.4f}")
    print(f"greedy_16 ids {g_ids}")
    print(f"greedy_16 text {out['greedy_16']['text']!r}")
    print(f"greedy_16 margins {[round(m, 3) for m in g_margins]}")
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")


if __name__ == "__main__":
    main()
