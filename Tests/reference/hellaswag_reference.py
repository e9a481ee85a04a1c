#!/usr/bin/env python3
"""Reference HellaSwag scores for the Swift evaluator, with build-nanogpt's hellaswag.py method.

Run from the repository root:  /work/venv/bin/python Tests/reference/hellaswag_reference.py
Reads Tests/Fixtures/hellaswag/hellaswag_20.jsonl (20 hand-written examples in the official
format) and writes into Tests/Fixtures/hellaswag/:
  model/            a random-init GPT2LMHeadModel (vocab 50257, 2 layers, 2 heads, 16 channels,
                    128 positions; save_pretrained, F32, < 4 MB) with enlarged weights so the
                    four endings' losses differ clearly
  expected.json     per example: the label, pred (argmin of the summed ending loss), pred_norm
                    (argmin of the mean), the four sums and means; and the totals
                    (num_total, num_correct, num_correct_norm) as hellaswag.py counts them
  hellaswag_20.bin  the same examples in llm.c's eval-file format (dev/data/data_common.py
                    write_evalfile: magic 20240522), tokens from tiktoken's GPT-2 encoding
The scoring is hellaswag.py's render_example + get_most_likely_row: context tokens, then each
ending encoded as " " + ending; rows padded with 0 to the longest; cross-entropy of logits[:-1]
against tokens[1:]; a mask over the ending tokens (shifted by one); sum and mean per row.
Float32 on CPU, one thread, eager attention: reruns reproduce the files.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tiktoken_reference import load as load_tiktoken  # offline GPT-2 encoding from the package's files

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
OUT = os.path.join(HERE, "..", "Fixtures", "hellaswag")


def make_model():
    torch.manual_seed(2024)
    cfg = GPT2Config(vocab_size=50257, n_positions=128, n_embd=16, n_layer=2, n_head=2,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if "ln" in name and name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.copy_(0.05 * torch.randn_like(p))
            elif "wte" in name:
                p.normal_(0.0, 0.5)    # tied lm_head: larger logits, clearer preferences
            else:
                p.normal_(0.0, 0.2)
    return model


def render_example(enc, example):
    ctx_tokens = enc.encode(example["ctx"])
    tok_rows, mask_rows, ending_tokens = [], [], []
    for end in example["endings"]:
        end_tokens = enc.encode(" " + end)
        ending_tokens.append(end_tokens)
        tok_rows.append(ctx_tokens + end_tokens)
        mask_rows.append([0] * len(ctx_tokens) + [1] * len(end_tokens))
    max_len = max(len(r) for r in tok_rows)
    tokens = torch.zeros((4, max_len), dtype=torch.long)
    mask = torch.zeros((4, max_len), dtype=torch.long)
    for i, (t, m) in enumerate(zip(tok_rows, mask_rows)):
        tokens[i, :len(t)] = torch.tensor(t)
        mask[i, :len(m)] = torch.tensor(m)
    return ctx_tokens, ending_tokens, tokens, mask


def score(logits, tokens, mask):
    """hellaswag.py get_most_likely_row, returning the sums and means too."""
    shift_logits = logits[..., :-1, :].contiguous()
    shift_tokens = tokens[..., 1:].contiguous()
    shift_losses = F.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)), shift_tokens.view(-1), reduction="none")
    shift_losses = shift_losses.view(tokens.size(0), -1)
    shift_mask = mask[..., 1:].contiguous()
    sum_loss = (shift_losses * shift_mask).sum(dim=1)
    avg_loss = sum_loss / shift_mask.sum(dim=1)
    return sum_loss, avg_loss


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
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.array(stream, dtype=np.uint16).tobytes())


def main():
    enc = load_tiktoken()
    model = make_model()
    mdir = os.path.join(OUT, "model")
    shutil.rmtree(mdir, ignore_errors=True)
    model.save_pretrained(mdir, safe_serialization=True)
    gen = os.path.join(mdir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)

    examples = [json.loads(l) for l in open(os.path.join(OUT, "hellaswag_20.jsonl"), encoding="utf-8")]
    rows, datas = [], []
    correct = correct_norm = 0
    min_margin = float("inf")
    longest = 0
    with torch.no_grad():
        for ex in examples:
            ctx, endings, tokens, mask = render_example(enc, ex)
            longest = max(longest, tokens.size(1))
            sums, means = score(model(tokens).logits, tokens, mask)
            pred, pred_norm = int(sums.argmin()), int(means.argmin())
            correct += int(pred == ex["label"])
            correct_norm += int(pred_norm == ex["label"])
            for v in (sums, means):
                s = sorted(v.tolist())
                min_margin = min(min_margin, s[1] - s[0])
            rows.append({"label": ex["label"], "pred": pred, "pred_norm": pred_norm,
                         "sum_losses": sums.tolist(), "mean_losses": means.tolist(),
                         "ctx_tokens": len(ctx), "ending_tokens": [len(e) for e in endings]})
            datas.append((ex["label"], ctx, endings))
    assert longest <= 128, f"longest row {longest} exceeds n_positions"
    result = {"num_total": len(examples), "num_correct": correct, "num_correct_norm": correct_norm,
              "acc": correct / len(examples), "acc_norm": correct_norm / len(examples),
              "longest_row": longest, "min_margin": min_margin, "examples": rows}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    write_evalfile(os.path.join(OUT, "hellaswag_20.bin"), datas)
    print(f"{len(examples)} acc: {result['acc']:.4f} acc_norm: {result['acc_norm']:.4f} "
          f"longest row {longest}, smallest margin between best and second {min_margin:.5f}")


if __name__ == "__main__":
    main()
