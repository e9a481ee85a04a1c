#!/usr/bin/env python3
"""transformers' generate on the GPU, the reference for `gpt sample --device cuda`: the same HF
model directory, the same prompt ids, the same number of new tokens for the same batch, top-k 50
sampling at temperature 1 (gpt sample's defaults), KV cache on, bf16 weights. Exactly N new
tokens are generated (min_new_tokens = max_new_tokens, so no early stop). Where transformers is not
installed, bench/gpt2_torch.py's plain PyTorch KV-cache loop stands in (said in the output).
One warm-up call, then the timed one. Prints `new_tokens`, `seconds` and `tok/s` (new tokens
of all samples per second).
  python3 bench/torch_gpu_generate.py MODEL_DIR [--samples 5] [--new 256] [--prompt 15496,11,...]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_torch import load_model

HELLO = [15496, 11, 314, 1101, 257, 3303, 2746, 11]   # "Hello, I'm a language model," (GPT-2 BPE)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--prompt", default=",".join(map(str, HELLO)))
    a = p.parse_args()
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    model, kind = load_model(a.model, "cuda", dtype)
    ids = torch.tensor([[int(t) for t in a.prompt.split(",")]] * a.samples, device="cuda")
    mask = torch.ones_like(ids)

    def run(n):
        torch.manual_seed(0)
        with torch.no_grad():
            if kind == "transformers":
                return model.generate(ids, attention_mask=mask, do_sample=True, top_k=50, temperature=1.0,
                                      max_new_tokens=n, min_new_tokens=n, pad_token_id=50256)
            return model.generate(ids, n, top_k=50, temperature=1.0)

    run(8)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = run(a.new)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    new = (out.shape[1] - ids.shape[1]) * a.samples
    print(f"reference {kind}")
    print(f"new_tokens {new}")
    print(f"seconds {seconds:.3f}")
    print(f"tok/s {new / seconds:.1f}")


if __name__ == "__main__":
    main()
