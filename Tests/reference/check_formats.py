#!/usr/bin/env python3
"""Independent checks of files written by the Swift formats code (run by FormatsExportTests and
FormatsSafeTensorsTests; prints "ok" and exits 0 on success, raises otherwise).

  check_formats.py hf ORIGINAL_DIR EXPORTED_DIR [ORIGINAL_DIR EXPORTED_DIR ...]
      Loads each pair with GPT2LMHeadModel.from_pretrained (float32, eager attention) and asserts
      identical parameters and identical logits on fixed token ids.
  check_formats.py safetensors FILE METADATA_JSON
      Opens FILE with safetensors.safe_open and checks the tensors written by the Swift test:
      "m" (F32, 2-D), "m_bf16" == m.to(bfloat16) bit for bit (round to nearest even; NaN matches any NaN),
      "mt" == m.T (written transposed), "mt_bf16" == m.T.to(bfloat16), "empty" (shape [0]),
      "scalar" (shape []), and the __metadata__ map equals METADATA_JSON plus "crc32c": a JSON
      object giving, for every tensor, the CRC-32C (Castagnoli, computed here in pure Python) of
      its bytes in the file as 8 hex digits.
"""
import json
import sys

import torch


def check_hf(pairs):
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    for original, exported in pairs:
        a = GPT2LMHeadModel.from_pretrained(original, dtype=torch.float32, attn_implementation="eager").eval()
        b = GPT2LMHeadModel.from_pretrained(exported, dtype=torch.float32, attn_implementation="eager").eval()
        assert b.config.model_type == "gpt2" and b.config.architectures == ["GPT2LMHeadModel"], b.config
        for k in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size", "activation_function", "layer_norm_epsilon"):
            assert getattr(a.config, k) == getattr(b.config, k), (k, getattr(a.config, k), getattr(b.config, k))
        sa, sb = a.state_dict(), b.state_dict()
        for k, v in sa.items():
            if k.endswith("attn.bias") and v.dim() == 4 or k.endswith("masked_bias"):
                continue   # causal-mask buffers, not parameters
            assert k in sb, f"{exported}: missing {k}"
            assert sb[k].shape == v.shape, (k, sb[k].shape, v.shape)
            assert torch.equal(sb[k], v), f"{exported}: {k} differs (max {(sb[k] - v).abs().max().item()})"
        assert b.lm_head.weight.data_ptr() == b.transformer.wte.weight.data_ptr(), "lm_head not tied to wte"
        V, T = a.config.vocab_size, min(16, a.config.n_positions)
        ids = torch.randint(0, V, (2, T))
        ids[0, 0], ids[1, -1] = V - 1, 0
        with torch.no_grad():
            la, lb = a(input_ids=ids).logits, b(input_ids=ids).logits
        assert torch.equal(la, lb), f"{exported}: logits differ by {(la - lb).abs().max().item()}"
    print("ok")


def same_bf16(a, b):
    """Bitwise equality, except that any NaN matches any NaN (torch's vectorised CPU conversion
    writes 0xFFFF for NaN, its scalar path 0x7FC0)."""
    na, nb = torch.isnan(a.float()), torch.isnan(b.float())
    ia, ib = a.contiguous().view(torch.int16), b.contiguous().view(torch.int16)
    return torch.equal(na, nb) and torch.equal(ia[~na], ib[~nb])


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: slow but independent."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def check_checksums(path, checksums_json):
    """Every tensor's bytes (located with the file's own header) match the stored CRC-32C."""
    assert crc32c(b"123456789") == 0xE3069283   # the standard check value
    with open(path, "rb") as fh:
        raw = fh.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    stored = json.loads(checksums_json)
    assert set(stored) == set(header), (sorted(stored), sorted(header))
    for name, entry in header.items():
        b, e = entry["data_offsets"]
        got = "%08x" % crc32c(raw[8 + n + b:8 + n + e])
        assert stored[name] == got, f"{name}: stored crc32c {stored[name]}, computed {got}"


def check_safetensors(path, metadata_json):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        md = f.metadata()
        expected = json.loads(metadata_json)
        assert "crc32c" in md, md
        check_checksums(path, md.pop("crc32c"))
        assert md == expected, (md, expected)
        keys = set(f.keys())
        assert keys == {"m", "m_bf16", "mt", "mt_bf16", "empty", "scalar"}, keys
        m = f.get_tensor("m")
        assert m.dtype == torch.float32 and m.dim() == 2, (m.dtype, m.shape)
        mb = f.get_tensor("m_bf16")
        assert mb.dtype == torch.bfloat16 and mb.shape == m.shape
        assert same_bf16(mb, m.to(torch.bfloat16)), "BF16 rounding differs from torch"
        mt = f.get_tensor("mt")
        assert mt.shape == (m.shape[1], m.shape[0])
        assert torch.equal(mt.view(torch.int32), m.t().contiguous().view(torch.int32)), "transposed F32 differs"
        mtb = f.get_tensor("mt_bf16")
        assert same_bf16(mtb, m.t().to(torch.bfloat16)), "transposed BF16 differs"
        e = f.get_tensor("empty")
        assert e.shape == (0,) and e.dtype == torch.float32
        s = f.get_tensor("scalar")
        assert s.shape == () and s.item() == 1.5, (s.shape, s)
    print("ok")


if __name__ == "__main__":
    if sys.argv[1] == "hf":
        rest = sys.argv[2:]
        check_hf(list(zip(rest[0::2], rest[1::2])))
    elif sys.argv[1] == "safetensors":
        check_safetensors(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown check {sys.argv[1]}")
