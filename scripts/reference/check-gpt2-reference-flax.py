#!/usr/bin/env python3
"""Cross-check make-gpt2-reference.py against Hugging Face's FlaxGPT2LMHeadModel in float64.

Optional; not needed to regenerate the reference. torch from PyPI is the CUDA build (over
1 GB with its nvidia-* wheels), so the check uses transformers' Flax GPT-2 instead, which
loads model.safetensors without torch. One-time venv (about 760 MB, CPU only):

    python3 -m venv ~/.cache/veil/venvs/hf-flax
    ~/.cache/veil/venvs/hf-flax/bin/python -m pip install "numpy<2" jax==0.4.13 \\
        jaxlib==0.4.13 flax==0.7.0 transformers==4.46.3 safetensors

Then, from the repository root:

    ~/.cache/veil/venvs/hf-flax/bin/python scripts/reference/check-gpt2-reference-flax.py \\
        --model "$(scripts/fetch-model.sh gpt2-tiny | tail -n 1)" \\
        --ref Tests/VeilModelsTests/Data/gpt2-tiny-reference.json

Compares logits and final hidden states at every position of every case (and of the full
greedy sequence) between the numpy model and Flax, then the JSON file's numbers against
Flax. Exits non-zero when a difference exceeds --tol.
"""

import argparse
import importlib.util
import json
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import transformers  # noqa: E402
from transformers import FlaxGPT2LMHeadModel  # noqa: E402


def load_generator():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-gpt2-reference.py")
    spec = importlib.util.spec_from_file_location("make_gpt2_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--tol", type=float, default=1e-10)
    a = ap.parse_args()

    gen = load_generator()
    ours = gen.GPT2(a.model)
    flax = FlaxGPT2LMHeadModel.from_pretrained(a.model, from_pt=True, dtype=jnp.float64)
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), flax.params)
    wte = np.asarray(params["transformer"]["wte"]["embedding"])
    assert np.array_equal(wte, ours.w["wte.weight"]), "Flax wte differs from safetensors"

    def run_flax(ids):
        out = flax(jnp.asarray([ids]), params=params, output_hidden_states=True)
        assert out.logits.dtype == jnp.float64
        return np.asarray(out.hidden_states[-1][0]), np.asarray(out.logits[0])

    with open(a.ref) as f:
        ref = json.load(f)
    seqs = [(c["name"], c["ids"]) for c in ref["cases"]]
    g = ref["greedy_16"]
    seqs.append(("greedy_full", g["prompt_ids"] + g["ids"]))

    worst = 0.0
    print(f"transformers {transformers.__version__}, jax {jax.__version__}")
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
        jd = max(jd, abs(c["hidden_all_abs_sum"] - float(np.abs(h1).sum())))
    ids = list(g["prompt_ids"])
    for step, tid in enumerate(g["ids"]):
        _, l1 = run_flax(ids)
        order = np.lexsort((np.arange(l1.shape[1]), -l1[-1]))
        assert int(order[0]) == tid, f"greedy step {step}"
        jd = max(jd, abs(g["margins"][step] - float(l1[-1, order[0]] - l1[-1, order[1]])))
        jd = max(jd, abs(g["top_logits"][step] - float(l1[-1, order[0]])))
        ids.append(tid)
    worst = max(worst, jd)
    print(f"JSON vs Flax: argmax and greedy ids agree; max abs diff {jd:.3e}")
    print(f"worst {worst:.3e} (tol {a.tol:g})")
    sys.exit(0 if worst <= a.tol else 1)


if __name__ == "__main__":
    main()
