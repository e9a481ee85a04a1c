#!/usr/bin/env python3
"""PyTorch CPU eager reference figures for bench/cpu_vs_torch.sh (same shapes as `gpt bench`).
  torch_cpu_bench.py train LAYERS HEADS EMBD B T STEPS [--impl hf|nanogpt] [--bf16]
      -> `peak_rss_mb Y`, `step_ms median .. min .. max .. iqr ..`, `tok/s X` (from the median step)
  torch_cpu_bench.py generate LAYERS HEADS EMBD PROMPT NEW -> `tok/s X` (transformers generate, top-k 50)
--impl hf: transformers' GPT2LMHeadModel (Conv1D) with build-nanogpt's settings (tanh GELU, tied
head, no dropout); --impl nanogpt: build-nanogpt's GPT (nn.Linear, scaled_dot_product_attention).
--bf16: the step runs under torch.autocast("cpu", dtype=torch.bfloat16) (bf16 matmuls through
oneDNN, fp32 master weights), as build-nanogpt does on GPUs.
AdamW(0.9, 0.95, wd 0.1 on 2-D params), clip 1.0: one optimizer step = forward + backward + AdamW.
"""
import argparse
import contextlib
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def hf_model(layers, heads, embd):
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(n_layer=layers, n_head=heads, n_embd=embd, n_positions=1024, vocab_size=50257,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


class Block(nn.Module):
    """build-nanogpt's transformer block (nn.Linear weights)."""

    def __init__(self, n_head, n_embd):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class NanoGPT(nn.Module):
    def __init__(self, layers, heads, embd, vocab=50257, block=1024):
        super().__init__()
        self.wte = nn.Embedding(vocab, embd)
        self.wpe = nn.Embedding(block, embd)
        self.h = nn.ModuleList(Block(heads, embd) for _ in range(layers))
        self.ln_f = nn.LayerNorm(embd)
        self.lm_head = nn.Linear(embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight   # tied, as GPT-2

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def train(layers, heads, embd, B, T, steps, impl, bf16):
    m = (hf_model(layers, heads, embd) if impl == "hf" else NanoGPT(layers, heads, embd)).train()
    decay = [p for p in m.parameters() if p.dim() >= 2]
    nodecay = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 50257, (B, T + 1), generator=g)
    x, y = tokens[:, :-1], tokens[:, 1:]
    times, cpu = [], []
    for step in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            out = m(x)
            logits = out.logits if impl == "hf" else out
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if step > 0:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)   # all threads: robust to other processes on the machine
        if not math.isfinite(loss.item()):
            raise SystemExit(f"non-finite loss at step {step}")
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    med = statistics.median(times)
    print(f"peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    print(f"step_ms median {med * 1000:.1f} min {min(times) * 1000:.1f} max {max(times) * 1000:.1f} "
          f"({(min(times) / med - 1) * 100:+.0f}%/{(max(times) / med - 1) * 100:+.0f}%) "
          f"iqr {q[0] * 1000:.1f}-{q[2] * 1000:.1f} ({(q[2] - q[0]) / med * 100:.1f}% of median)")
    print(f"cpu_ms median {statistics.median(cpu) * 1000:.1f} (CPU time of all threads per step)")
    print(f"tok/s mean {B * T / (sum(times) / len(times)):.1f}")
    print(f"tok/s {B * T / med:.1f}")


def generate(layers, heads, embd, prompt, new):
    m = hf_model(layers, heads, embd).eval()
    x = torch.randint(0, 50257, (1, prompt), generator=torch.Generator().manual_seed(1))
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            m.generate(x, do_sample=True, top_k=50, max_new_tokens=new, min_new_tokens=new, pad_token_id=50256)
            best = min(best, time.perf_counter() - t0)
    print(f"tok/s {new / best:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "generate"])
    ap.add_argument("numbers", type=int, nargs="+")
    ap.add_argument("--impl", choices=["hf", "nanogpt"], default="hf")
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    if a.mode == "train":
        train(*a.numbers, impl=a.impl, bf16=a.bf16)
    else:
        generate(*a.numbers)
