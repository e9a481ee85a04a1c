#!/usr/bin/env python3
"""Attention probabilities from Hugging Face transformers for `AttentionMap` (gpt inspect attention).

Run from the repository root:  .venv/bin/python Tests/reference/make_attention_fixture.py
Reads the tiny random GPT-2 of Tests/Fixtures/model/tiny_v96 (make_model_fixtures.py: 2 layers,
4 heads, 64 channels, vocab 96) and writes Tests/Fixtures/attention/tiny_v96_attentions.safetensors:
  tokens      (T,) int32, T = 13 fixed pseudo-random ids
  attentions  (L, NH, T, T) float32: output_attentions=True of the eager attention, batch 1
Float32 on CPU, one thread, so reruns reproduce the file bit for bit.
"""
import os

import torch
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "Fixtures", "model", "tiny_v96")
OUT = os.path.join(HERE, "..", "Fixtures", "attention", "tiny_v96_attentions.safetensors")

model = GPT2LMHeadModel.from_pretrained(MODEL, attn_implementation="eager").float().eval()
g = torch.Generator().manual_seed(2024)
tokens = torch.randint(0, model.config.vocab_size, (1, 13), generator=g)
with torch.no_grad():
    out = model(input_ids=tokens, output_attentions=True)
att = torch.stack([a[0] for a in out.attentions])   # (L, NH, T, T)
os.makedirs(os.path.dirname(OUT), exist_ok=True)
save_file({"tokens": tokens[0].to(torch.int32).contiguous(), "attentions": att.contiguous()}, OUT,
          metadata={"generator": f"make_attention_fixture.py, transformers {__import__('transformers').__version__}, torch {torch.__version__}"})
print(f"attentions {tuple(att.shape)}, row sums {att.sum(-1).min().item():.6f}..{att.sum(-1).max().item():.6f}")
