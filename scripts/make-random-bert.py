#!/usr/bin/env python3
"""Write a BERT model folder with random weights at a real shape, for deployment benchmarks.

    python3 scripts/make-random-bert.py OUT --like MINILM_DIR [--hidden 768 --layers 12 --heads 12]

The weights follow Veil's benchmark rule (Sources/VeilModels/RandomWeights.swift): LayerNorm
scales U(0.8, 1.2), matrices U(+-1.7/sqrt(fan_in)), other vectors U(+-0.17); float32
safetensors with sentence-transformers' names. The tokenizer and the other public files are
copied from --like (all-MiniLM-L6-v2 uses BERT's uncased 30522-token vocabulary), so
`veil share-model` and `veil embed --remote` work on it. Needs only numpy. Never commit the
output: it is a benchmark fixture of ~440 MB at BERT-base.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--like", required=True, help="a BERT folder to copy the tokenizer from")
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    d, ff, vocab, positions = a.hidden, 4 * a.hidden, 30522, 512
    rng = np.random.default_rng(a.seed)
    shapes = [
        ("embeddings.word_embeddings.weight", [vocab, d]),
        ("embeddings.position_embeddings.weight", [positions, d]),
        ("embeddings.token_type_embeddings.weight", [2, d]),
        ("embeddings.LayerNorm.weight", [d]),
        ("embeddings.LayerNorm.bias", [d]),
    ]
    for l in range(a.layers):
        pre = f"encoder.layer.{l}."
        for name in ["attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"]:
            shapes += [(pre + name + ".weight", [d, d]), (pre + name + ".bias", [d])]
        shapes += [(pre + "intermediate.dense.weight", [ff, d]),
                   (pre + "intermediate.dense.bias", [ff]),
                   (pre + "output.dense.weight", [d, ff]), (pre + "output.dense.bias", [d])]
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"]:
            shapes += [(pre + norm + ".weight", [d]), (pre + norm + ".bias", [d])]
    header, blobs, offset = {}, [], 0
    for name, shape in shapes:
        if name.endswith("LayerNorm.weight"):
            values = rng.uniform(0.8, 1.2, shape)
        else:
            scale = 1 / np.sqrt(shape[1]) if len(shape) == 2 else 0.1
            values = rng.uniform(-scale, scale, shape) * 1.7
        blob = values.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    os.makedirs(a.out, exist_ok=True)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    config = json.load(open(os.path.join(a.like, "config.json")))
    config.update(hidden_size=d, num_hidden_layers=a.layers, num_attention_heads=a.heads,
                  intermediate_size=ff, vocab_size=vocab, max_position_embeddings=positions)
    json.dump(config, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    for name in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "sentence_bert_config.json"]:
        if os.path.exists(os.path.join(a.like, name)):
            shutil.copy(os.path.join(a.like, name), os.path.join(a.out, name))
    print(a.out)


if __name__ == "__main__":
    main()
