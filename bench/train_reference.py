#!/usr/bin/env python3
"""PyTorch reference for learning fidelity: build-nanogpt's training loop (DataLoaderLite over the
same shards, AdamW(0.9, 0.95, eps 1e-8) with weight decay on 2-D parameters, clip 1.0, get_lr,
gradient accumulation, validation every N steps) on transformers' GPT2LMHeadModel (the same
architecture as build-nanogpt's GPT: tanh-GELU, tied lm_head, no dropout).

  train_reference.py --data DIR --init-out DIR --log FILE [--steps 300 ...]

Writes the initial weights as an HF directory (so `gpt train --init` starts from the same point)
and a log in build-nanogpt's format (`<step> train <loss>`, `<step> val <loss>`).
"""
import argparse
import math
import os
import time

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel


def load_tokens(path):
    if path.endswith(".npy"):
        return torch.tensor(np.load(path).astype(np.int64))
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype=np.int32)
        assert header[0] == 20240520, path
        return torch.tensor(np.frombuffer(f.read(), dtype=np.uint16).astype(np.int64))


class DataLoaderLite:  # build-nanogpt's, single process
    def __init__(self, B, T, root, split):
        self.B, self.T = B, T
        self.shards = sorted(os.path.join(root, s) for s in os.listdir(root) if f"_{split}_" in s)
        assert self.shards, f"no {split} shards in {root}"
        self.reset()

    def reset(self):
        self.current_shard = 0
        self.tokens = load_tokens(self.shards[self.current_shard])
        self.current_position = 0

    def next_batch(self):
        B, T = self.B, self.T
        buf = self.tokens[self.current_position: self.current_position + B * T + 1]
        x, y = buf[:-1].view(B, T), buf[1:].view(B, T)
        self.current_position += B * T
        if self.current_position + (B * T + 1) > len(self.tokens):
            self.current_shard = (self.current_shard + 1) % len(self.shards)
            self.tokens = load_tokens(self.shards[self.current_shard])
            self.current_position = 0
        return x, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--init-out", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--embd", type=int, default=256)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("-B", type=int, default=8)
    ap.add_argument("-T", type=int, default=128)
    ap.add_argument("--total-batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--max-lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--val-steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1337)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    cfg = GPT2Config(n_layer=a.layers, n_head=a.heads, n_embd=a.embd, n_positions=a.context, vocab_size=50257,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():  # build-nanogpt's init: N(0, 0.02), residual projections 0.02/sqrt(2L), biases 0
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "ln" in name:
                p.fill_(1.0)
            else:
                std = 0.02 * (2 * a.layers) ** -0.5 if name.endswith("c_proj.weight") else 0.02
                p.normal_(0.0, std)
    model.save_pretrained(a.init_out)
    model.train()

    max_lr, min_lr = a.max_lr, a.max_lr * a.min_lr_frac

    def get_lr(it):  # build-nanogpt
        if it < a.warmup:
            return max_lr * (it + 1) / a.warmup
        if it > a.steps:
            return min_lr
        decay_ratio = (it - a.warmup) / (a.steps - a.warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (max_lr - min_lr)

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    nodecay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=max_lr, betas=(0.9, 0.95), eps=1e-8)
    train, val = DataLoaderLite(a.B, a.T, a.data, "train"), DataLoaderLite(a.B, a.T, a.data, "val")
    accum = a.total_batch // (a.B * a.T)
    log = open(a.log, "w")
    for step in range(a.steps):
        last = step == a.steps - 1
        if step % a.val_every == 0 or last:
            model.eval()
            val.reset()
            with torch.no_grad():
                vl = 0.0
                for _ in range(a.val_steps):
                    x, y = val.next_batch()
                    vl += torch.nn.functional.cross_entropy(model(x).logits.view(-1, 50257), y.view(-1)).item() / a.val_steps
            print(f"validation loss: {vl:.4f}", flush=True)
            log.write(f"{step} val {vl:.4f}\n")
            model.train()
        t0 = time.time()
        opt.zero_grad()
        loss_accum = 0.0
        for _ in range(accum):
            x, y = train.next_batch()
            logits = model(x).logits
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)) / accum
            loss_accum += loss.detach().item()
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        lr = get_lr(step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        dt = time.time() - t0
        print(f"step {step:5d} | loss: {loss_accum:.6f} | lr {lr:.4e} | norm: {norm:.4f} | dt: {dt * 1000:.2f}ms | tok/sec: {a.total_batch / dt:.2f}", flush=True)
        log.write(f"{step} train {loss_accum:.6f}\n")
        log.flush()


if __name__ == "__main__":
    main()
