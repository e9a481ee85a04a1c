# GPU check of the tensor-core attention kernels (Kernels/CUDAAttentionTC.swift) outside Swift:
# compiles the unit and the SIMT unit with nvcc (-DGPT2_BF16 -DATT_HS=64), runs forward + backward
# through CuPy on random bf16 inputs, compares out, lse and dq/dk/dv with an fp64 PyTorch reference
# (max |x - ref| / max |ref|, bound 3e-2 as the selftest's .attention) and with the SIMT kernels,
# checks the D = rowsum(dout ∘ out) that the tc dQ kernel writes for dK/dV (launch order, grids and
# blocks as CUDAContext.attentionForwardTC / attentionBackwardTC),
# then times both against torch SDPA at GPT-2 small shapes (T=1024, NH=12, HS=64).
# Usage: python3 bench/attention_tc_extract.py . DIR && python3 bench/attention_tc_check.py DIR
# (needs torch, cupy and nvcc on a GPU machine).
import os, sys, subprocess, time, math
import torch, cupy as cp
here = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
arch = "sm_%d%d" % torch.cuda.get_device_capability()
mods = {}
for name in ["attention_tc", "attention"]:
    cub = f"/tmp/{name}.cubin"
    r = subprocess.run(["nvcc", "-cubin", f"-arch={arch}", "-std=c++17", "-DGPT2_BF16", "-DATT_HS=64", "-Xptxas", "-v",
                        "-o", cub, f"{here}/{name}.cu"], capture_output=True, text=True)
    print(name, "nvcc rc", r.returncode, r.stderr[-1500:] if r.returncode else "")
    mods[name] = cp.RawModule(path=cub)
tc, simt = mods["attention_tc"], mods["attention"]
def fn(m, n): return m.get_function(n)
def cpx(t): return cp.from_dlpack(t.view(torch.int16) if t.dtype == torch.bfloat16 else t)
I = lambda v: cp.int32(v)

def run(B, T, NH, which, qkv, dout):
    C = NH * 64
    out = torch.zeros(B, T, C, dtype=torch.bfloat16, device="cuda")
    lse = torch.zeros(B, NH, T, dtype=torch.float32, device="cuda")
    dinp = torch.full((B, T, 3 * C), float("nan"), dtype=torch.bfloat16, device="cuda")
    # NaN: the tc dQ kernel must write D for every row before dK/dV reads it
    Dbuf = torch.full((B, NH, T), float("nan"), dtype=torch.float32, device="cuda")
    nq = (T + 31) // 32                          # SIMT: 32-row blocks
    nq128, nk64 = (T + 127) // 128, (T + 63) // 64   # tc (AttentionTCTiling): 128-query blocks of 256, 64-key blocks of 128
    dims = (I(B), I(T), I(C), I(NH))
    def fwd():
        if which == "tc": fn(tc, "attention_forward_tc_kernel")((nq128, B * NH), (256,), (cpx(out), cpx(lse), cpx(qkv)) + dims)
        else: fn(simt, "attention_forward_kernel")((nq, B * NH), (128,), (cpx(out), cpx(lse), cpx(qkv)) + dims)
    def bwd():
        n = B * NH * T
        args = (cpx(dinp), cpx(dout), cpx(qkv), cpx(lse), cpx(Dbuf)) + dims
        if which == "tc":   # as CUDAContext.attentionBackwardTC: dQ (writes D) then dK/dV (reads D), no preprocess
            fn(tc, "attention_backward_dq_tc_kernel")((nq128, B * NH), (256,), (cpx(dinp), cpx(dout), cpx(qkv), cpx(out), cpx(lse), cpx(Dbuf)) + dims)
            fn(tc, "attention_backward_dkdv_tc_kernel")((nk64, B * NH), (128,), args)
        else:
            fn(simt, "attention_backward_preprocess_kernel")(((n + 7) // 8,), (256,), (cpx(Dbuf), cpx(dout), cpx(out)) + dims)
            fn(simt, "attention_backward_dkdv_kernel")((nq, B * NH), (128,), args)
            fn(simt, "attention_backward_dq_kernel")((nq, B * NH), (128,), args)
    fwd(); bwd(); torch.cuda.synchronize()
    return out, lse, dinp, fwd, bwd, Dbuf

def reference(B, T, NH, qkv, dout):
    C = NH * 64
    x = qkv.double().view(B, T, 3, NH, 64).permute(2, 0, 3, 1, 4)
    q, k, v = [t.clone().requires_grad_(True) for t in x]
    s = q @ k.transpose(-1, -2) / 8.0
    mask = torch.ones(T, T, dtype=torch.bool, device="cuda").tril()
    s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, -1)
    o = torch.softmax(s, -1) @ v
    do = dout.double().view(B, T, NH, 64).permute(0, 2, 1, 3)
    o.backward(do)
    out = o.permute(0, 2, 1, 3).reshape(B, T, C)
    dqkv = torch.stack([q.grad, k.grad, v.grad]).permute(1, 3, 0, 2, 4).reshape(B, T, 3 * C)
    return out, lse, dqkv

def rel(a, b):
    a, b = a.double(), b.double()
    if not torch.isfinite(a).all(): return float("nan")
    d, m = (a - b).abs().max().item(), b.abs().max().item()
    return d / m if m > 0 else d

ok = True
for (B, T, NH) in [(2, 96, 4), (1, 200, 2), (1, 64, 1), (1, 1, 1), (1, 65, 2), (3, 127, 2), (1, 128, 2), (1, 129, 2),
                   (2, 320, 3), (2, 1024, 12)]:
    torch.manual_seed(B * 1000 + T)
    C = NH * 64
    qkv = torch.randn(B, T, 3 * C, device="cuda").bfloat16()
    dout = torch.randn(B, T, C, device="cuda").bfloat16()
    ro, rl, rd = reference(B, T, NH, qkv, dout)
    res = {}
    for which in ["tc", "simt"]:
        out, lse, dinp, _, _, Dbuf = run(B, T, NH, which, qkv, dout)
        e = [rel(out, ro), rel(lse, rl)] + [rel(dinp[..., p * C:(p + 1) * C], rd[..., p * C:(p + 1) * C]) for p in range(3)]
        res[which] = (out, lse, dinp)
        if which == "tc":   # D as written by the dQ kernel vs rowsum(dout ∘ out) in fp64 (the same bf16 out)
            Dref = (dout.double() * out.double()).view(B, T, NH, 64).sum(-1).permute(0, 2, 1)
            eD = rel(Dbuf, Dref)
            ok &= eD <= 1e-5
            print(f"B={B} T={T} NH={NH} tc   D (written by dQ) {eD:.2e} {'ok' if eD <= 1e-5 else 'FAIL'}")
        good = all(x <= 3e-2 for x in e) and e[1] <= 1e-4
        ok &= good or which == "simt"
        print(f"B={B} T={T} NH={NH} {which:4s} out {e[0]:.2e} lse {e[1]:.2e} dq {e[2]:.2e} dk {e[3]:.2e} dv {e[4]:.2e} {'ok' if good else 'FAIL'}")
    print(f"   tc vs simt: out {rel(res['tc'][0], res['simt'][0]):.2e} dinp {rel(res['tc'][2], res['simt'][2]):.2e}")
print("ALL OK" if ok else "SOME FAIL")

# timing: GPT-2 small layer shapes
for (B, T, NH) in [(8, 1024, 12), (16, 1024, 12)]:
    C = NH * 64
    qkv = torch.randn(B, T, 3 * C, device="cuda").bfloat16(); dout = torch.randn(B, T, C, device="cuda").bfloat16()
    flop_f = 2 * 2 * B * NH * 64 * T * T / 2
    for which in ["tc", "simt"]:
        _, _, _, fwd, bwd, _ = run(B, T, NH, which, qkv, dout)
        for f, name, fl in [(fwd, "fwd", flop_f), (bwd, "bwd", 2.5 * flop_f)]:
            for _ in range(3): f()
            torch.cuda.synchronize(); st = torch.cuda.Event(enable_timing=True); en = torch.cuda.Event(enable_timing=True)
            st.record()
            for _ in range(20): f()
            en.record(); torch.cuda.synchronize()
            ms = st.elapsed_time(en) / 20
            print(f"B={B} T={T} NH={NH} {which:4s} {name}: {ms:.3f} ms  {fl / ms / 1e9:.1f} TFLOP/s")
    # torch SDPA (flash) for scale
    x = qkv.view(B, T, 3, NH, 64).permute(2, 0, 3, 1, 4)
    q, k, v = [t.contiguous().requires_grad_(True) for t in x]
    for _ in range(3): o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.cuda.synchronize(); st = torch.cuda.Event(enable_timing=True); en = torch.cuda.Event(enable_timing=True)
    st.record()
    for _ in range(20): o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    en.record(); torch.cuda.synchronize(); ms = st.elapsed_time(en) / 20
    print(f"B={B} T={T} NH={NH} torch sdpa fwd: {ms:.3f} ms  {flop_f / ms / 1e9:.1f} TFLOP/s")
