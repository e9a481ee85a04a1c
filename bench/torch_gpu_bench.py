"""build-nanogpt's GPT-2 (124M) training step on one GPU, timed: the PyTorch reference for
bench/gpu_vs_torch.sh. Model as build-nanogpt's train_gpt2.py: causal self-attention through
F.scaled_dot_product_attention(is_causal=True) (flash), tanh-GELU MLP, tied LM head, vocab 50304,
bf16 autocast, fused AdamW (0.9, 0.95, eps 1e-8, wd 0.1 on 2-D), clip 1.0, torch.compile.
Random tokens; the last line is `tok/s <number>`.
    python torch_gpu_bench.py [--layers 12 --heads 12 --embd 768] -B 64 -T 1024 --steps 20
"""
import argparse, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, C, nh):
        super().__init__()
        self.nh = nh
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, C, nh):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.attn = CausalSelfAttention(C, nh)
        self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(approximate="tanh"), nn.Linear(4 * C, C))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, L, nh, C, V=50304, maxT=1024):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(maxT, C)
        self.h = nn.ModuleList(Block(C, nh) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, V, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.h:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--embd", type=int, default=768)
    ap.add_argument("-B", type=int, default=64)
    ap.add_argument("-T", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(1337)
    torch.set_float32_matmul_precision("high")
    dev = "cuda"
    model = GPT(a.layers, a.heads, a.embd).to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    if not a.no_compile:
        model = torch.compile(model)
    x = torch.randint(0, 50257, (a.B, a.T), device=dev)
    y = torch.randint(0, 50257, (a.B, a.T), device=dev)
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()} B={a.B} T={a.T} compile={not a.no_compile}")
    times = []
    for step in range(a.steps + 3):  # 3 warm-up steps (compilation)
        t0 = time.time()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        dt = time.time() - t0
        if step >= 3:
            times.append(dt)
        print(f"step {step} loss {loss.item():.4f} {dt * 1000:.1f} ms")
    print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"tok/s {a.B * a.T / (sum(times) / len(times)):.1f}")


if __name__ == "__main__":
    main()
