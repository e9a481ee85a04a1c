#!/usr/bin/env python3
"""Reference fixtures for the Swift GPT-2 engine, computed with Hugging Face transformers.

Run from the repository root:  /work/venv/bin/python Tests/reference/make_model_fixtures.py
Writes into Tests/Fixtures/model/:
  tiny_v96/         GPT2LMHeadModel (2 layers, 4 heads, 64 channels, 64 positions, vocab 96),
                    save_pretrained layout ("transformer." keys, F32) + reference.safetensors with
                    inputs/targets (B=2, T=16), logits, loss, the gradient of every parameter, and
                    parameters/losses/norms after three AdamW steps (lr 1e-3, betas (0.9, 0.95),
                    eps 1e-8, weight decay 0.1 on 2-D params only, clip_grad_norm_ 1.0 each step,
                    same batch each step).
  hub_v50257_bf16/  vocab 50257 (2 layers, 2 heads, 32 channels, 32 positions) in the hub's
                    original layout (no "transformer." prefix, attn.bias / attn.masked_bias
                    buffers), BF16 weights; reference.safetensors with inputs/targets (B=2, T=4),
                    logits and loss computed from the BF16 weights upcast to float32.
  dtypes.safetensors  the same values stored as F32, F16 and BF16 plus the exact float32 they decode to.
Everything is float32 on CPU with fixed seeds, one thread and eager attention, so reruns
reproduce the files bit for bit (multi-threaded CPU kernels were seen to vary by 3e-5 between runs).
"""
import json
import os
import shutil

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# One metadata key only: safetensors writes a multi-key metadata map in random order.
META = {"generator": f"make_model_fixtures.py, transformers {__import__('transformers').__version__}, torch {torch.__version__}"}
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fixtures", "model")


def make_model(seed, **kw):
    torch.manual_seed(seed)
    cfg = GPT2Config(activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **kw)
    cfg._attn_implementation = "eager"   # plain softmax(QKᵀ/√d)V, no fused CPU kernels
    model = GPT2LMHeadModel(cfg).float().eval()   # eval: no dropout (all p = 0 anyway)
    # Perturb HF's init so every parameter matters: non-trivial LayerNorm affine and biases,
    # and larger weights so attention is far from uniform.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if "ln" in name and name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.copy_(0.05 * torch.randn_like(p))
            elif "c_attn" in name:
                p.normal_(0.0, 0.2)
            else:
                p.normal_(0.0, 0.1)
    return model


def loss_fn(model, inputs, targets):
    logits = model(input_ids=inputs).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    return logits, loss


def tiny_fixture():
    out = os.path.join(ROOT, "tiny_v96")
    shutil.rmtree(out, ignore_errors=True)
    V, B, T = 96, 2, 16
    model = make_model(1234, n_layer=2, n_head=4, n_embd=64, n_positions=64, vocab_size=V)
    model.save_pretrained(out, safe_serialization=True)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, V, (B, T + 1), generator=g)
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    ref = {"inputs": inputs.to(torch.int32), "targets": targets.to(torch.int32)}
    logits, loss = loss_fn(model, inputs, targets)
    loss.backward()
    ref["logits"] = logits.detach().clone()
    ref["loss"] = loss.detach().reshape(1).clone()
    for name, p in model.named_parameters():
        ref["grad." + name] = p.grad.detach().clone()

    decay = [p for p in model.parameters() if p.dim() >= 2]
    nodecay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    losses, norms = [], []
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        _, loss = loss_fn(model, inputs, targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
    ref["adamw_losses"] = torch.tensor(losses, dtype=torch.float32)
    ref["adamw_norms"] = torch.tensor(norms, dtype=torch.float32)
    for name, p in model.named_parameters():
        ref["adamw." + name] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(out, "reference.safetensors"),
              metadata=META)
    print(f"tiny_v96: loss {ref['loss'].item():.6f}, step norms {norms}")


def hub_fixture():
    out = os.path.join(ROOT, "hub_v50257_bf16")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    V, B, T, NP = 50257, 2, 4, 32
    model = make_model(99, n_layer=2, n_head=2, n_embd=32, n_positions=NP, vocab_size=V)
    # The file stores BF16; the reference runs on exactly those values in float32.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    model.config.to_json_file(os.path.join(out, "config.json"))
    tensors = {}
    for name, p in model.transformer.state_dict().items():   # hub layout: no "transformer." prefix
        tensors[name] = p.detach().to(torch.bfloat16).contiguous()
    for l in range(model.config.n_layer):   # non-parameter buffers the original checkpoints carry
        tensors[f"h.{l}.attn.bias"] = torch.tril(torch.ones(NP, NP)).view(1, 1, NP, NP)
        tensors[f"h.{l}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})

    g = torch.Generator().manual_seed(11)
    tokens = torch.randint(0, V, (B, T + 1), generator=g)
    tokens[0, 0], tokens[1, 2] = V - 1, 0   # exercise both ends of the vocabulary
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    with torch.no_grad():
        logits, loss = loss_fn(model, inputs, targets)
    save_file({"inputs": inputs.to(torch.int32), "targets": targets.to(torch.int32),
               "logits": logits.contiguous(), "loss": loss.reshape(1)},
              os.path.join(out, "reference.safetensors"), metadata=META)
    print(f"hub_v50257_bf16: loss {loss.item():.6f}")


def dtype_fixture():
    x = torch.tensor([0.0, -0.0, 1.0, -2.5, 3.140625, 65504.0, 6.1035156e-05, 5.9604645e-08, -1e-3, 123.456])
    save_file({"f32": x.float(), "f16": x.half(), "bf16": x.bfloat16(),
               "f16_as_f32": x.half().float(), "bf16_as_f32": x.bfloat16().float(),
               "i64": torch.arange(4, dtype=torch.int64)},
              os.path.join(ROOT, "dtypes.safetensors"), metadata=META)


if __name__ == "__main__":
    os.makedirs(ROOT, exist_ok=True)
    tiny_fixture()
    hub_fixture()
    dtype_fixture()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"fixtures: {total / 1e6:.2f} MB in {ROOT}")
