#!/usr/bin/env python3
"""Reference generation and loss from transformers for `gpt sample` / `gpt eval loss` tests.
Uses the committed fixture model Tests/Fixtures/model/hub_v50257_bf16 (vocab 50257).
Writes Tests/Fixtures/generate/reference.json:
  greedy: generate(do_sample=False) continuation ids for a prompt (and the smallest top-1/top-2
          logit margin seen, so a test failure can be told apart from a near-tie),
  loss:   mean next-token cross-entropy of a text encoded as one sequence, in windows of the context.
"""
import json
import os
import sys

import torch
from transformers import GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tiktoken_reference import load  # noqa: E402

MODEL = os.path.join(HERE, "..", "Fixtures", "model", "hub_v50257_bf16")
OUT = os.path.join(HERE, "..", "Fixtures", "generate", "reference.json")
PROMPT = "Hello, I'm a language model,"
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n")


def main():
    torch.manual_seed(0)
    enc = load()
    model = GPT2LMHeadModel.from_pretrained(MODEL, torch_dtype=torch.float32).eval()
    ctx = model.config.n_positions
    prompt = enc.encode_ordinary(PROMPT)
    new = ctx - len(prompt)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=new, min_new_tokens=new,
                             pad_token_id=50256, output_scores=True, return_dict_in_generate=True)
    ids = out.sequences[0, len(prompt):].tolist()
    margins = [float((s[0].topk(2).values[0] - s[0].topk(2).values[1])) for s in out.scores]

    text_ids = enc.encode_ordinary(TEXT)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(text_ids) - 1, ctx):
            n = min(ctx, len(text_ids) - 1 - start)
            x = torch.tensor([text_ids[start:start + n]])
            y = torch.tensor([text_ids[start + 1:start + n + 1]])
            logits = model(x).logits
            total += torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), reduction="sum").item()
            count += n
    json.dump({"prompt": PROMPT, "prompt_ids": prompt, "greedy_ids": ids, "min_margin": min(margins),
               "text": TEXT, "text_tokens": len(text_ids), "loss": total / count}, open(OUT, "w"), indent=1)
    print(f"greedy {len(ids)} tokens, min top-1/top-2 margin {min(margins):.2e}; loss {total / count:.6f}")


if __name__ == "__main__":
    main()
