#!/usr/bin/env python3
"""Cross-check make-llama-reference.py against Hugging Face's FlaxLlamaForCausalLM in float64.

Optional; not needed to regenerate the reference. Uses the same one-time venv as
check-gpt2-reference-flax.py (about 760 MB, CPU only, no torch):

    python3 -m venv ~/.cache/veil/venvs/hf-flax
    ~/.cache/veil/venvs/hf-flax/bin/python -m pip install "numpy<2" jax==0.4.13 \\
        jaxlib==0.4.13 flax==0.7.0 transformers==4.46.3 safetensors

Then, from the repository root:

    ~/.cache/veil/venvs/hf-flax/bin/python scripts/reference/check-llama-reference-flax.py \\
        --model "$(scripts/fetch-model.sh llama-tiny | tail -n 1)" \\
        --ref Tests/VeilModelsTests/Data/llama-tiny-reference.json
    (and the same with llama-tiny-untied / llama-tiny-untied-reference.json)

transformers 4.46.3's Flax LLaMA (modeling_flax_llama.py) is not float64 throughout even
with dtype=float64 and jax x64: its RoPE table is built from float32 angles
(create_sinusoidal_positions casts the frequencies to float32 before sin/cos), its RMSNorm
takes the mean of squares in float32, and its attention softmax runs in float32 whenever the
dtype is not float32. It also hard-codes RoPE theta 10000 (ignores config.rope_theta) and uses
head_dim = hidden_size / num_attention_heads. So this script runs Flax twice:

  as-is      transformers' code unchanged: agreement to float32 rounding (~1e-5) is expected.
  float64    the same Flax modules with those three float32 spots made float64: the module's
             create_sinusoidal_positions is replaced by a float64 one (same formula, theta from
             config.json), and the module's `jnp` name is given a view of jax.numpy whose
             float32 is float64 (so the RMSNorm variance and the softmax are float64). Nothing
             else changes; agreement to ~1e-12 is expected and required (--tol).

Flax's LM head is a separate Dense whose kernel from_pretrained does not tie: for a tied
checkpoint (no lm_head.weight) the kernel is set to embed_tokens^T here; for an untied one it
is checked to be lm_head.weight^T. Compares logits and final hidden states at every position
of every case (and of the full greedy sequence) between the numpy model and Flax, then the
JSON file's numbers against Flax (the two hidden sums relative to their size). Exits non-zero
when a float64-mode difference exceeds --tol.
"""

import argparse
import importlib.util
import json
import os
import sys
import types

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import transformers  # noqa: E402
from transformers import FlaxLlamaForCausalLM  # noqa: E402
from transformers.models.llama import modeling_flax_llama as flax_llama  # noqa: E402

ORIGINAL_SINUSOIDS = flax_llama.create_sinusoidal_positions
ORIGINAL_JNP = flax_llama.jnp


def load_generator():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-llama-reference.py")
    spec = importlib.util.spec_from_file_location("make_llama_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Float64Jnp(types.ModuleType):
    """jax.numpy, except that `float32` is float64 (for modeling_flax_llama's name `jnp`)."""

    def __init__(self):
        super().__init__("jnp_float64_view")
        self.float32 = jnp.float64

    def __getattr__(self, name):
        return getattr(jnp, name)


def float64_sinusoids(theta):
    def create(num_pos, dim):
        inv_freq = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
        freqs = np.einsum("i , j -> i j", np.arange(num_pos, dtype=np.float64), inv_freq)
        emb = np.concatenate((freqs, freqs), axis=-1)
        out = np.concatenate((np.sin(emb)[:, None, :], np.cos(emb)[:, None, :]), axis=-1)
        return jnp.array(out[:, :, :num_pos], dtype=jnp.float64)
    return create


def set_mode(mode, theta):
    if mode == "float64":
        flax_llama.create_sinusoidal_positions = float64_sinusoids(theta)
        flax_llama.jnp = Float64Jnp()
    else:
        flax_llama.create_sinusoidal_positions = ORIGINAL_SINUSOIDS
        flax_llama.jnp = ORIGINAL_JNP


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--tol", type=float, default=1e-10)
    a = ap.parse_args()

    gen = load_generator()
    ours = gen.LLaMA(a.model)
    cfg = ours.cfg
    if ours.hd != cfg["hidden_size"] // cfg["num_attention_heads"]:
        raise SystemExit("Flax LLaMA assumes head_dim = hidden_size / num_attention_heads")
    with open(a.ref) as f:
        ref = json.load(f)
    seqs = [(c["name"], c["ids"]) for c in ref["cases"]]
    g = ref["greedy_16"]
    seqs.append(("greedy_full", g["prompt_ids"] + g["ids"]))
    print(f"transformers {transformers.__version__}, jax {jax.__version__}, "
          f"model {os.path.basename(os.path.normpath(a.model))} "
          f"(tie_word_embeddings {ours.tied})")

    results = {}
    for mode in ("as-is", "float64"):
        set_mode(mode, ours.theta)
        flax = FlaxLlamaForCausalLM.from_pretrained(a.model, from_pt=True, dtype=jnp.float64)
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), flax.params)
        emb = np.asarray(params["model"]["embed_tokens"]["embedding"])
        assert np.array_equal(emb, ours.w["model.embed_tokens.weight"]), "embeddings differ"
        if ours.tied:
            params["lm_head"]["kernel"] = jnp.asarray(emb.T)
        else:
            assert np.array_equal(np.asarray(params["lm_head"]["kernel"]),
                                  ours.w["lm_head.weight"].T), "lm_head differs"
        for i in range(ours.n_layer):
            q = np.asarray(params["model"]["layers"][str(i)]["self_attn"]["q_proj"]["kernel"])
            assert np.array_equal(q, ours.w[f"model.layers.{i}.self_attn.q_proj.weight"].T)

        def run_flax(ids):
            out = flax(jnp.asarray([ids]), params=params, output_hidden_states=True)
            assert out.logits.dtype == jnp.float64
            # hidden_states[-1] is after the final norm in transformers' Flax LLaMA
            return np.asarray(out.hidden_states[-1][0]), np.asarray(out.logits[0])

        worst = 0.0
        print(f"-- Flax {mode}")
        for name, ids in seqs:
            h0, l0 = ours.forward(ids)
            h1, l1 = run_flax(ids)
            dl, dh = float(np.abs(l0 - l1).max()), float(np.abs(h0 - h1).max())
            worst = max(worst, dl, dh)
            print(f"{name:12s} T={len(ids):2d}  max|dlogits| {dl:.3e}  max|dhidden| {dh:.3e}  "
                  f"(max|logit| {np.abs(l1).max():.3f})")

        # The JSON's own numbers against Flax.
        jd = 0.0
        for c in ref["cases"]:
            h1, l1 = run_flax(c["ids"])
            jd = max(jd, float(np.abs(np.array(c["hidden_last"]) - h1[-1]).max()))
            for i, v in c["logits_last_sample"]:
                jd = max(jd, abs(v - float(l1[-1, i])))
            order = np.lexsort((np.arange(l1.shape[1]), -l1[-1]))
            assert int(order[0]) == c["argmax_last"], c["name"]
            jd = max(jd, abs(c["top2_margin"] - float(l1[-1, order[0]] - l1[-1, order[1]])))
            # the two sums (up to ~1e4) are compared relative to their size
            t_idx = np.arange(h1.shape[0])[:, None] + 1.0
            j_idx = np.arange(h1.shape[1])[None, :] + 1.0
            for key, val in (("hidden_all_abs_sum", float(np.abs(h1).sum())),
                             ("hidden_all_weighted_sum", float((h1 * t_idx * j_idx).sum()))):
                jd = max(jd, abs(c[key] - val) / max(1.0, abs(val)))
        ids = list(g["prompt_ids"])
        for step, tid in enumerate(g["ids"]):
            _, l1 = run_flax(ids)
            order = np.lexsort((np.arange(l1.shape[1]), -l1[-1]))
            assert int(order[0]) == tid, f"greedy step {step}"
            jd = max(jd, abs(g["margins"][step] - float(l1[-1, order[0]] - l1[-1, order[1]])))
            jd = max(jd, abs(g["top_logits"][step] - float(l1[-1, order[0]])))
            ids.append(tid)
        worst = max(worst, jd)
        print(f"JSON vs Flax {mode}: argmax and greedy ids agree; max diff {jd:.3e}")
        results[mode] = worst
    set_mode("as-is", ours.theta)
    print(f"worst: as-is {results['as-is']:.3e}, float64 {results['float64']:.3e} "
          f"(tol {a.tol:g} on float64)")
    sys.exit(0 if results["float64"] <= a.tol else 1)


if __name__ == "__main__":
    main()
