"""GPT-2 for the benchmark references without transformers (GPU machines may lack it): HF GPT-2
directories written and read with numpy (config.json + model.safetensors, the layout
save_pretrained writes: `transformer.*` keys, Conv1D weights (in, out), lm_head tied and omitted),
and build-nanogpt's model in plain PyTorch (F.scaled_dot_product_attention, tanh GELU) that loads
them, with a KV-cache sampling loop (top-k then temperature, as transformers' generate).
When transformers is importable the benchmarks use it instead (`load_model`).
"""
import json
import math
import os

import numpy as np


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        dtype = {"F32": np.float32, "F16": np.float16}[info["dtype"]]
        out[name] = np.frombuffer(data[lo:hi], dtype=dtype).reshape(info["shape"]).astype(np.float32)
    return out


def make_hf_dir(path, layers, heads, embd, seed, vocab=50257, positions=1024):
    """A random-init GPT-2 (std 0.02; projections 0.02/sqrt(2·layers), as GPT-2) as an HF directory."""
    rng = np.random.default_rng(seed)
    C = embd

    def normal(*shape, std=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    t = {"transformer.wte.weight": normal(vocab, C), "transformer.wpe.weight": normal(positions, C, std=0.01)}
    proj = 0.02 / math.sqrt(2 * layers)
    for l in range(layers):
        p = f"transformer.h.{l}."
        t[p + "ln_1.weight"], t[p + "ln_1.bias"] = np.ones(C, np.float32), np.zeros(C, np.float32)
        t[p + "attn.c_attn.weight"], t[p + "attn.c_attn.bias"] = normal(C, 3 * C), np.zeros(3 * C, np.float32)
        t[p + "attn.c_proj.weight"], t[p + "attn.c_proj.bias"] = normal(C, C, std=proj), np.zeros(C, np.float32)
        t[p + "ln_2.weight"], t[p + "ln_2.bias"] = np.ones(C, np.float32), np.zeros(C, np.float32)
        t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = normal(C, 4 * C), np.zeros(4 * C, np.float32)
        t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = normal(4 * C, C, std=proj), np.zeros(C, np.float32)
    t["transformer.ln_f.weight"], t["transformer.ln_f.bias"] = np.ones(C, np.float32), np.zeros(C, np.float32)
    os.makedirs(path, exist_ok=True)
    write_safetensors(os.path.join(path, "model.safetensors"), t)
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab, "n_positions": positions,
              "n_embd": C, "n_layer": layers, "n_head": heads, "n_inner": None, "activation_function": "gelu_new",
              "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
              "initializer_range": 0.02, "bos_token_id": 50256, "eos_token_id": 50256, "tie_word_embeddings": True,
              "scale_attn_weights": True, "use_cache": True}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def load_model(path, device, dtype=None):
    """(model, kind): transformers' GPT2LMHeadModel when importable, else `PlainGPT2`. Either call
    returns logits (B, T, V) for token ids (B, T)."""
    import torch
    try:
        from transformers import GPT2LMHeadModel
        m = GPT2LMHeadModel.from_pretrained(path, **({"dtype": dtype} if dtype is not None else {}))
        return m.to(device).eval(), "transformers"
    except ImportError:
        m = PlainGPT2.from_hf_dir(path)
        if dtype is not None:
            m = m.to(dtype)
        return m.to(device).eval(), "plain PyTorch (transformers not installed)"


def logits_of(model, tokens):
    out = model(tokens)
    return out.logits if hasattr(out, "logits") else out


def _torch_modules():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    return torch, nn, F


torch, nn, F = _torch_modules()


class PlainGPT2(nn.Module):
    """build-nanogpt's GPT-2 forward (and a KV cache for `generate`)."""

    def __init__(self, layers, heads, embd, vocab, positions):
        super().__init__()
        self.nh, self.C = heads, embd
        self.wte, self.wpe = nn.Embedding(vocab, embd), nn.Embedding(positions, embd)
        self.ln1 = nn.ModuleList(nn.LayerNorm(embd) for _ in range(layers))
        self.ln2 = nn.ModuleList(nn.LayerNorm(embd) for _ in range(layers))
        self.attn = nn.ModuleList(nn.Linear(embd, 3 * embd) for _ in range(layers))
        self.proj = nn.ModuleList(nn.Linear(embd, embd) for _ in range(layers))
        self.fc = nn.ModuleList(nn.Linear(embd, 4 * embd) for _ in range(layers))
        self.fcproj = nn.ModuleList(nn.Linear(4 * embd, embd) for _ in range(layers))
        self.lnf = nn.LayerNorm(embd)

    @staticmethod
    def from_hf_dir(path):
        with open(os.path.join(path, "config.json")) as f:
            c = json.load(f)
        m = PlainGPT2(c["n_layer"], c["n_head"], c["n_embd"], c["vocab_size"], c["n_positions"])
        t = read_safetensors(os.path.join(path, "model.safetensors"))
        t = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in t.items()}
        T = lambda a: torch.from_numpy(np.ascontiguousarray(a))
        with torch.no_grad():
            m.wte.weight.copy_(T(t["wte.weight"]))
            m.wpe.weight.copy_(T(t["wpe.weight"]))
            for l in range(c["n_layer"]):
                p = f"h.{l}."
                for mod, name in ((m.ln1[l], "ln_1"), (m.ln2[l], "ln_2")):
                    mod.weight.copy_(T(t[p + name + ".weight"]))
                    mod.bias.copy_(T(t[p + name + ".bias"]))
                for mod, name in ((m.attn[l], "attn.c_attn"), (m.proj[l], "attn.c_proj"), (m.fc[l], "mlp.c_fc"),
                                  (m.fcproj[l], "mlp.c_proj")):
                    mod.weight.copy_(T(t[p + name + ".weight"]).t())   # Conv1D (in, out) -> Linear (out, in)
                    mod.bias.copy_(T(t[p + name + ".bias"]))
            m.lnf.weight.copy_(T(t["ln_f.weight"]))
            m.lnf.bias.copy_(T(t["ln_f.bias"]))
        return m

    def forward(self, idx, cache=None):
        """Logits (B, T, V). With `cache` (a list, one (k, v) per layer, filled in place), the
        positions continue after what the cache holds."""
        B, T = idx.shape
        past = 0 if not cache else cache[0][0].shape[2]
        x = self.wte(idx) + self.wpe(torch.arange(past, past + T, device=idx.device))
        hs = self.C // self.nh
        for l in range(len(self.attn)):
            q, k, v = self.attn[l](self.ln1[l](x)).split(self.C, dim=2)
            q, k, v = (a.view(B, T, self.nh, hs).transpose(1, 2) for a in (q, k, v))
            if cache is not None:
                if len(cache) > l:
                    k = torch.cat([cache[l][0], k], dim=2)
                    v = torch.cat([cache[l][1], v], dim=2)
                    cache[l] = (k, v)
                else:
                    cache.append((k, v))
            # a prefill is causal; a single new token sees every cached key
            assert past == 0 or T == 1, "PlainGPT2: several new tokens after a cache are not supported"
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
            x = x + self.proj[l](y.transpose(1, 2).contiguous().view(B, T, self.C))
            x = x + self.fcproj[l](F.gelu(self.fc[l](self.ln2[l](x)), approximate="tanh"))
        return F.linear(self.lnf(x), self.wte.weight)

    @torch.no_grad()
    def generate(self, idx, new_tokens, top_k=50, temperature=1.0):
        cache = []
        logits = self(idx, cache)[:, -1, :]
        out = [idx]
        for _ in range(new_tokens):
            logits = logits.float() / temperature
            v, _ = torch.topk(logits, top_k)
            logits[logits < v[:, [-1]]] = -float("inf")
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1)
            out.append(nxt)
            logits = self(nxt, cache)[:, -1, :]
        return torch.cat(out, dim=1)
