#!/usr/bin/env python3
"""nanoGPT's generate (crop the running sequence to the last block_size tokens, then predict)
on a transformers GPT2LMHeadModel, greedy. Prints JSON {"ids": [...], "min_margin": m}.
Usage: nanogpt_generate_reference.py MODEL_DIR NEW_TOKENS PROMPT_ID..."""
import json
import sys

import torch
from transformers import GPT2LMHeadModel


def main():
    model_dir, new = sys.argv[1], int(sys.argv[2])
    idx = torch.tensor([[int(t) for t in sys.argv[3:]]])
    model = GPT2LMHeadModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    block = model.config.n_positions
    margins = []
    with torch.no_grad():
        for _ in range(new):
            idx_cond = idx if idx.size(1) <= block else idx[:, -block:]
            logits = model(idx_cond).logits[:, -1, :]
            top = logits[0].topk(2).values
            margins.append(float(top[0] - top[1]))
            idx = torch.cat((idx, logits.argmax(dim=-1, keepdim=True)), dim=1)
    print(json.dumps({"ids": idx[0, -new:].tolist(), "min_margin": min(margins)}))


if __name__ == "__main__":
    main()
