#!/usr/bin/python3
"""tests/study_hf.py DIR SEED — a random 2-layer Llama-3-shaped Hugging Face folder for the
real-model study test (tests/study_tofu_llama.sh): config.json, two shards and
model.safetensors.index.json, written by tests/torch_hf.py's writer. Llama-3's vocabulary
(128 256 ids, so that the Llama-3 tokenizer's ids fit) and special ids (bos 128000, eos
128001/128008/128009), tied embeddings, F32; hidden 64, 4 heads over 2 kv heads, MLP 96,
RoPE llama3 scaling, 256 positions. The tokenizer files are copied in by the test."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_hf  # noqa: E402


def main(d, seed):
    c = torch_hf.config_for("tied")
    c.update({"num_hidden_layers": 2, "vocab_size": 128256, "max_position_embeddings": 256,
              "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]})
    w = torch_hf.make_weights(c, seed)
    w["model.embed_tokens.weight"] *= 0.05  # tied head: logits of order 1, not 50
    layer = lambda l: [n for n in w if n.startswith(f"model.layers.{l}.")]
    shards = [["model.embed_tokens.weight"] + layer(0), layer(1) + ["model.norm.weight"]]
    assert sum(map(len, shards)) == len(w)
    torch_hf.write_folder(d, c, w, shards)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
