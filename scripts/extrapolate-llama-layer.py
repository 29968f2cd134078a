"""Whole-model figures of a LLaMA from one measured block (issue 19's llama2-*-layer rows).

    extrapolate-llama-layer.py PROMPT_ONLY.json PROMPT_AND_ONE_TOKEN.json

Both are `veil bench model --model llama2-7b|llama2-13b --layers 1 --seq 128 --generate 1|2
--json` reports. Per layer type, the block kinds are scaled by the model's depth and the
embedding, final norm, LM head and argmax counted once; the second run minus the first is the
cost of one token after the prompt. Prints a JSON object with the prompt pass (first token)
and the one-token step, each: online seconds, P0-P1 bytes, rounds, keys per party.
"""

import json
import sys

OUTSIDE = {"embedding", "final norm + LM head", "argmax + one-hot", "pooling + L2 norm"}


def whole(report):
    depth = report["model_layers"] / report["layers"]
    total = {"online_seconds": 0.0, "online_bytes": 0.0, "rounds": 0.0, "key_bytes_per_party": 0.0}
    for kind, cost in report["per_layer_type"].items():
        factor = 1 if kind in OUTSIDE else depth
        for key in total:
            total[key] += cost[key] * factor
    return total


def main():
    first, second = (json.load(open(path)) for path in sys.argv[1:3])
    prompt, both = whole(first), whole(second)
    step = {key: both[key] - prompt[key] for key in prompt}
    print(json.dumps({
        "model": first["model"], "model_layers": first["model_layers"], "seq": first["seq"],
        "ring_bits": first["params"]["ring_bits"],
        "prompt_pass": prompt, "one_token_step": step,
        "measured_block": {"prompt_online_seconds": first["online_seconds"],
                           "two_steps_online_seconds": second["online_seconds"]},
    }, indent=1))


if __name__ == "__main__":
    main()
