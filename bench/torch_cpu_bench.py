#!/usr/bin/env python3
"""PyTorch CPU eager reference figures for bench/cpu_vs_torch.sh (same shapes as `gpt bench`).
  torch_cpu_bench.py train LAYERS HEADS EMBD B T STEPS     -> `tok/s X` and `peak_rss_mb Y`
  torch_cpu_bench.py generate LAYERS HEADS EMBD PROMPT NEW -> `tok/s X` (transformers generate, top-k 50)
GPT2LMHeadModel with build-nanogpt's settings (tanh GELU, tied head, no dropout), float32,
AdamW(0.9, 0.95, wd 0.1 on 2-D params), clip 1.0: one optimizer step = forward + backward + AdamW.
"""
import resource
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def model(layers, heads, embd):
    cfg = GPT2Config(n_layer=layers, n_head=heads, n_embd=embd, n_positions=1024, vocab_size=50257,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def train(layers, heads, embd, B, T, steps):
    m = model(layers, heads, embd).train()
    decay = [p for p in m.parameters() if p.dim() >= 2]
    nodecay = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 50257, (B, T + 1), generator=g)
    x, y = tokens[:, :-1], tokens[:, 1:]
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = m(x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if step > 0:
            times.append(time.perf_counter() - t0)
    print(f"peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    print(f"tok/s {B * T / (sum(times) / len(times)):.1f}")


def generate(layers, heads, embd, prompt, new):
    m = model(layers, heads, embd).eval()
    x = torch.randint(0, 50257, (1, prompt), generator=torch.Generator().manual_seed(1))
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            m.generate(x, do_sample=True, top_k=50, max_new_tokens=new, min_new_tokens=new, pad_token_id=50256)
            best = min(best, time.perf_counter() - t0)
    print(f"tok/s {new / best:.1f}")


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    torch.manual_seed(0)
    if mode == "train":
        train(*map(int, args))
    else:
        generate(*map(int, args))
