#!/usr/bin/env python3
"""Synthetic HellaSwag for benchmarks: examples with HellaSwag's length distribution, random
tokens, a random-init GPT-2 saved as an HF directory, and the reference scoring of build-nanogpt's
hellaswag.py (transformers' GPT2LMHeadModel, or bench/gpt2_torch.py's plain PyTorch GPT-2 where
transformers is not installed; the four endings of an example padded with 0 into one (4, T) batch;
cross-entropy of logits[:-1] against tokens[1:] masked to the ending; acc = argmin of the sum,
acc_norm = argmin of the mean).

  make DIR [--layers 4 --heads 4 --embd 256] [--examples 500] [--seed 1]
      DIR/model/ (save_pretrained, fp32) and DIR/examples.bin (llm.c's eval file, magic 20240522),
      which `gpt eval hellaswag --model DIR/model --data DIR/examples.bin` reads.
  score DIR [--device cpu|cuda] [--dtype fp32|bf16] [--threads N] [--tokens-per-batch N]
      Scores DIR/examples.bin with DIR/model and prints `examples`, `acc`, `acc_norm` as
      `gpt eval hellaswag` does, then `seconds <scoring time>`. On the CPU, one example per forward
      (hellaswag.py); with --tokens-per-batch, several examples per forward (rows padded to the
      longest), as our evaluator packs them. bf16: torch.autocast (fp32 weights, bf16 matmuls).

Length distribution (tokens, GPT-2 encoding): HellaSwag's validation set is about one third
ActivityNet (contexts of 12-40 tokens, endings of 7-28 — the 20 examples in
Tests/Fixtures/hellaswag measure 12-36 and 7-28) and two thirds WikiHow (contexts of 40-100 tokens,
endings of 12-36). That is about 140 tokens for a context and its four endings on average, close to
the 10,042-example validation set's mean prompt of 768 characters less the instruction and labels
(evalscope's statistics), at about 4.4 characters per token.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def lengths(rng):
    if rng.random() < 1 / 3:   # ActivityNet-like
        return int(rng.integers(12, 41)), [int(rng.integers(7, 29)) for _ in range(4)]
    return int(rng.integers(40, 101)), [int(rng.integers(12, 37)) for _ in range(4)]


def write_evalfile(path, datas):
    """llm.c dev/data/data_common.py write_evalfile (GPT-2: uint16 stream)."""
    header = np.zeros(256, dtype=np.int32)
    header[0], header[1], header[2] = 20240522, 1, len(datas)
    stream, longest = [], 0
    for idx, (label, ctx, endings) in enumerate(datas):
        ex = [2**16 - 1, 0, idx, label, len(endings), len(ctx)] + ctx
        for e in endings:
            ex += [len(e)] + e
        ex[1] = 2 * len(ex)
        longest = max(longest, ex[1])
        stream += ex
    header[3] = longest
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(np.array(stream, dtype=np.uint16).tobytes())
    os.replace(tmp, path)


def read_evalfile(path):
    data = np.fromfile(path, dtype=np.uint8)
    header = data[:1024].view(np.int32)
    assert header[0] == 20240522, f"{path}: bad magic {header[0]}"
    stream = data[1024:].view(np.uint16).astype(np.int64)
    out, i = [], 0
    for _ in range(int(header[2])):
        assert stream[i] == 2**16 - 1
        n = int(stream[i + 1]) // 2
        ex = stream[i:i + n].tolist()
        label, num, ctx_len = ex[3], ex[4], ex[5]
        ctx = ex[6:6 + ctx_len]
        j, endings = 6 + ctx_len, []
        for _ in range(num):
            k = ex[j]
            endings.append(ex[j + 1:j + 1 + k])
            j += 1 + k
        out.append((label, ctx, endings))
        i += n
    return out


def make(args):
    from gpt2_torch import make_hf_dir
    rng = np.random.default_rng(args.seed)
    datas = []
    for _ in range(args.examples):
        c, es = lengths(rng)
        ctx = rng.integers(0, 50257, c).tolist()
        endings = [rng.integers(0, 50257, e).tolist() for e in es]
        datas.append((int(rng.integers(0, 4)), ctx, endings))
    os.makedirs(args.dir, exist_ok=True)
    write_evalfile(os.path.join(args.dir, "examples.bin"), datas)
    make_hf_dir(os.path.join(args.dir, "model"), args.layers, args.heads, args.embd, args.seed)
    print(f"{args.examples} examples, model {args.layers}L/{args.heads}H/{args.embd} in {args.dir}")


def score(args):
    import torch
    import torch.nn.functional as F
    from gpt2_torch import load_model, logits_of
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    model, kind = load_model(os.path.join(args.dir, "model"), dev)
    datas = read_evalfile(os.path.join(args.dir, "examples.bin"))
    # rows of (tokens, mask) per example, as hellaswag.py's render_example
    rendered = []
    for label, ctx, endings in datas:
        rows = [(ctx + e, [0] * len(ctx) + [1] * len(e)) for e in endings]
        rendered.append((label, rows))
    batches, i = [], 0
    while i < len(rendered):   # one example per batch (hellaswag.py), or packed up to --tokens-per-batch
        j, T = i, 0
        while j < len(rendered):
            t = max(T, max(len(r[0]) for r in rendered[j][1]))
            if j > i and (4 * (j - i + 1)) * t > args.tokens_per_batch:
                break
            T, j = t, j + 1
        batches.append((i, j, T))
        i = j
    correct = correct_norm = 0
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad(), autocast:
        for i, j, T in batches:
            n = 4 * (j - i)
            tokens = torch.zeros((n, T), dtype=torch.long)
            mask = torch.zeros((n, T), dtype=torch.long)
            for e in range(i, j):
                for k, (t, m) in enumerate(rendered[e][1]):
                    tokens[4 * (e - i) + k, :len(t)] = torch.tensor(t)
                    mask[4 * (e - i) + k, :len(m)] = torch.tensor(m)
            tokens, mask = tokens.to(dev), mask.to(dev)
            logits = logits_of(model, tokens)
            shift_logits = logits[..., :-1, :].contiguous()
            shift_tokens = tokens[..., 1:].contiguous()
            losses = F.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)).float(), shift_tokens.view(-1), reduction="none")
            losses = losses.view(n, -1)
            shift_mask = mask[..., 1:].contiguous()
            sums = (losses * shift_mask).sum(dim=1)
            means = sums / shift_mask.sum(dim=1)
            sums, means = sums.view(-1, 4).cpu(), means.view(-1, 4).cpu()
            for e in range(i, j):
                label = rendered[e][0]
                correct += int(int(sums[e - i].argmin()) == label)
                correct_norm += int(int(means[e - i].argmin()) == label)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    total = len(datas)
    print(f"examples {total}")
    print(f"acc {correct / total:.4f} ({correct}/{total})")
    print(f"acc_norm {correct_norm / total:.4f} ({correct_norm}/{total})")
    print(f"forwards {len(batches)}")
    print(f"reference {kind}, {args.device} {args.dtype}")
    print(f"seconds {seconds:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--layers", type=int, default=4)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--embd", type=int, default=256)
    m.add_argument("--examples", type=int, default=500)
    m.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("score")
    s.add_argument("dir")
    s.add_argument("--device", default="cpu")
    s.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--tokens-per-batch", type=int, default=1, help="1: one example per forward (hellaswag.py)")
    args = p.parse_args()
    {"make": make, "score": score}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
