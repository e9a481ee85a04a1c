#!/usr/bin/env python3
"""Learning rates from build-nanogpt's get_lr (copied verbatim below) for the Swift LRSchedule test.
Usage: lr_schedule_reference.py OUT.json"""
import json
import math
import sys


def make_get_lr(max_lr, min_lr, warmup_steps, max_steps):
    # --- build-nanogpt train_gpt2.py ---
    def get_lr(it):
        # 1) linear warmup for warmup_iters steps
        if it < warmup_steps:
            return max_lr * (it+1) / warmup_steps
        # 2) if it > lr_decay_iters, return min learning rate
        if it > max_steps:
            return min_lr
        # 3) in between, use cosine decay down to min learning rate
        decay_ratio = (it - warmup_steps) / (max_steps - warmup_steps)
        assert 0 <= decay_ratio <= 1
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) # coeff starts at 1 and goes to 0
        return min_lr + coeff * (max_lr - min_lr)
    return get_lr


cases = []
for (max_lr, min_lr, warmup, max_steps) in [(6e-4, 6e-5, 715, 19073), (1e-3, 1e-4, 30, 500), (3e-4, 0.0, 1, 10)]:
    get_lr = make_get_lr(max_lr, min_lr, warmup, max_steps)
    steps = sorted(set([0, 1, 2, warmup - 1, warmup, warmup + 1, max_steps // 2, max_steps - 1, max_steps, max_steps + 1, max_steps + 100]
                       + list(range(0, max_steps + 2, max(1, max_steps // 37)))))
    cases.append({"max_lr": max_lr, "min_lr": min_lr, "warmup": warmup, "max_steps": max_steps,
                  "steps": steps, "lr": [get_lr(s) for s in steps]})
json.dump(cases, open(sys.argv[1], "w"), indent=0)
