#!/usr/bin/env python3
"""Independent checks of `gpt export` output (run by ExportCommandTests; prints "ok" on success,
raises otherwise).

  check_export.py hf ORIGINAL_DIR EXPORTED_DIR CASES_JSON
      GPT2LMHeadModel.from_pretrained of both: identical parameters and logits. The exported
      tokenizer: AutoTokenizer (fast) and GPT2Tokenizer (slow) load it, their vocabulary is
      ORIGINAL's or GPT-2's (50257 entries, <|endoftext|> = 50256 as bos/eos), and both encode every
      text of CASES_JSON (Tests/Fixtures/tokenizer/cases.json, made with tiktoken) to its
      "ids_special" and decode them back. GenerationConfig.from_pretrained gives eos 50256.
  check_export.py llmc HF_DIR BIN [BIN ...]
      Reads each BIN as llm.c's model file (header: magic 20240326, version 3 = fp32 / 5 = bf16, maxT,
      V, L, NH, C, Vp; then wte (Vp,C), wpe, ln1w, ln1b, qkvw (L,3C,C), qkvb, attprojw (L,C,C),
      attprojb, ln2w, ln2b, fcw (L,4C,C), fcb, fcprojw (L,C,4C), fcprojb, lnfw, lnfb) with numpy,
      and compares every tensor with the HF model's (Conv1D weights transposed, padding rows 0).
"""
import json
import sys

import numpy as np
import torch


def check_hf(original, exported, cases_path):
    from transformers import AutoTokenizer, GenerationConfig, GPT2LMHeadModel, GPT2Tokenizer

    a = GPT2LMHeadModel.from_pretrained(original, dtype=torch.float32, attn_implementation="eager").eval()
    b = GPT2LMHeadModel.from_pretrained(exported, dtype=torch.float32, attn_implementation="eager").eval()
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in sa.items():
        if k.endswith("attn.bias") and v.dim() == 4 or k.endswith("masked_bias"):
            continue
        assert torch.equal(sb[k], v), f"{k} differs"
    torch.manual_seed(0)
    ids = torch.randint(0, a.config.vocab_size, (2, min(16, a.config.n_positions)))
    with torch.no_grad():
        assert torch.equal(a(input_ids=ids).logits, b(input_ids=ids).logits), "logits differ"

    gen = GenerationConfig.from_pretrained(exported)
    assert gen.eos_token_id == 50256 and gen.bos_token_id == 50256, gen
    cases = json.load(open(cases_path))["encode"]
    for tok in (AutoTokenizer.from_pretrained(exported), GPT2Tokenizer.from_pretrained(exported)):
        vocab = tok.get_vocab()
        assert len(vocab) == 50257 and vocab["<|endoftext|>"] == 50256, len(vocab)
        assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 50256, tok.eos_token
        assert tok.bos_token_id == 50256, tok.bos_token_id
        assert tok.model_max_length == b.config.n_positions, tok.model_max_length
        for case in cases:
            got = tok.encode(case["text"])
            assert got == case["ids_special"], (type(tok).__name__, case["text"][:60], got[:20], case["ids_special"][:20])
            assert tok.decode(got) == case["text"], (type(tok).__name__, case["text"][:60])
    print("ok")


def check_llmc(hf_dir, paths):
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(hf_dir, dtype=torch.float32)
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    for path in paths:
        check_llmc_file(model.config, sd, path)
    print("ok")


def check_llmc_file(cfg, sd, path):
    raw = open(path, "rb").read()
    header = np.frombuffer(raw[:1024], dtype="<i4")
    magic, version, maxT, V, L, NH, C, Vp = (int(x) for x in header[:8])
    assert magic == 20240326, magic
    assert version in (3, 5), version
    assert (maxT, V, L, NH, C) == (cfg.n_positions, cfg.vocab_size, cfg.n_layer, cfg.n_head, cfg.n_embd), header[:8]
    assert Vp == (V + 127) // 128 * 128, Vp
    assert not header[8:].any(), "header words 8.. must be 0"
    if version == 3:
        data = np.frombuffer(raw[1024:], dtype="<f4")
        expect = lambda x: x.astype(np.float32)
    else:
        bits = np.frombuffer(raw[1024:], dtype="<u2").astype(np.uint32) << 16
        data = bits.view(np.float32)
        expect = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(torch.bfloat16).float().numpy()
    p = "transformer."

    def layers(name, transpose=False):
        out = [sd[f"{p}h.{l}.{name}"] for l in range(L)]
        return np.stack([x.T if transpose else x for x in out])

    wte = np.zeros((Vp, C), dtype=np.float32)
    wte[:V] = sd[p + "wte.weight"]
    tensors = [wte, sd[p + "wpe.weight"],
               layers("ln_1.weight"), layers("ln_1.bias"),
               layers("attn.c_attn.weight", True), layers("attn.c_attn.bias"),
               layers("attn.c_proj.weight", True), layers("attn.c_proj.bias"),
               layers("ln_2.weight"), layers("ln_2.bias"),
               layers("mlp.c_fc.weight", True), layers("mlp.c_fc.bias"),
               layers("mlp.c_proj.weight", True), layers("mlp.c_proj.bias"),
               sd[p + "ln_f.weight"], sd[p + "ln_f.bias"]]
    assert data.size == sum(t.size for t in tensors), (data.size, sum(t.size for t in tensors))
    offset = 0
    for i, t in enumerate(tensors):
        got = data[offset:offset + t.size].reshape(t.shape)
        assert np.array_equal(got, expect(t)), f"{path}: tensor {i} differs"
        offset += t.size


if __name__ == "__main__":
    if sys.argv[1] == "hf":
        check_hf(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "llmc":
        check_llmc(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(f"unknown check {sys.argv[1]}")
