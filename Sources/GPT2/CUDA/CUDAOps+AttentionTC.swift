// Launchers of the tensor-core attention kernels (Kernels/CUDAAttentionTCKernels.swift): the same
// arguments and results as attentionForward / attentionBackward in CUDAOps.swift, for bf16 training
// on sm_80+ with head size 64 (attentionTCAvailable says when). The backward runs dQ first, which also
// writes D = rowsum(dout ∘ out) into the scratch, then dK/dV, which reads it (no preprocess pass).
// The first version (2-byte transposed shared stores, no pipelining) was checked on an H200 (sm_90):
// CUDASelftest.runAttentionTC through these launchers (errors <= 4.7e-3 against the CPU and the SIMT
// kernels) and bench/attention_tc_check.py against fp64 PyTorch. The second (ldmatrix, cp.async
// double buffering, diagonal sub-block skipping) passed it on an H100 (bench/logs/2026-11-26-h100-run4).
// The third (128-query blocks of 8 warps for forward and dQ, D folded into dQ) awaits that check.
// Legend: B batch, T time, C channels, NH heads, HS = C/NH.

extension CUDALaunchConfig {
    /// attention_forward_tc_kernel and attention_backward_dq_tc_kernel: a block of 8 warps per
    /// (128-query tile, b·h); the kernels walk the tiles in reverse (longest first).
    public static func attentionTCQueryTiles(B: Int, T: Int, NH: Int) -> Launch {
        let t = CUDAKernelSource.AttentionTCTiling.self
        return Launch(grid: Dim3(max(1, ceilDiv(T, t.queryRows)), B * NH), block: Dim3(t.queryThreads))
    }

    /// attention_backward_dkdv_tc_kernel: a block of 4 warps per (64-key tile, b·h).
    public static func attentionTCKeyTiles(B: Int, T: Int, NH: Int) -> Launch {
        let t = CUDAKernelSource.AttentionTCTiling.self
        return Launch(grid: Dim3(max(1, ceilDiv(T, t.rows)), B * NH), block: Dim3(t.threads))
    }

    /// Whether the tensor-core kernels are real (not trapping stubs) for this build: bf16
    /// activations, head size 64, and a device of compute capability 8.0 or newer (mma.sync bf16).
    public static func attentionTCSupported(precision: CUDAPrecision, headSize: Int, deviceArch: Int) -> Bool {
        precision == .bf16 && headSize == CUDAKernelSource.AttentionTCTiling.headSize && deviceArch >= 80
    }
}

extension CUDAContext {
    /// True when attentionForwardTC / attentionBackwardTC may be called on this context.
    public var attentionTCAvailable: Bool {
        CUDALaunchConfig.attentionTCSupported(precision: precision, headSize: headSize, deviceArch: device.arch)
    }

    /// out (B,T,C); lse (B,NH,T) fp32; inp (B,T,3C). Same contract as attentionForward.
    public func attentionForwardTC(out: CUdeviceptr, lse: CUdeviceptr, inp: CUdeviceptr, B: Int, T: Int, C: Int, NH: Int) throws {
        precondition(C / NH == headSize, "attention compiled for head size \(headSize), model has \(C / NH)")
        precondition(attentionTCAvailable, "tensor-core attention needs bf16, head size 64 and sm_80+ (\(precision), \(headSize), sm_\(device.arch))")
        try launch("attention_forward_tc_kernel", CUDALaunchConfig.attentionTCQueryTiles(B: B, T: T, NH: NH),
                   [.pointer(out), .pointer(lse), .pointer(inp), .int(B), .int(T), .int(C), .int(NH)])
    }

    /// dinp (B,T,3C) =; dout (B,T,C); inp (B,T,3C); out (B,T,C) and lse (B,NH,T) from forward;
    /// scratch: B·NH·T floats (D = rowsum(dout ∘ out), written by the dQ kernel, read by dK/dV).
    /// Same contract as attentionBackward.
    public func attentionBackwardTC(dinp: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, out: CUdeviceptr, lse: CUdeviceptr,
                                    B: Int, T: Int, C: Int, NH: Int, scratch: CUdeviceptr) throws {
        precondition(C / NH == headSize, "attention compiled for head size \(headSize), model has \(C / NH)")
        precondition(attentionTCAvailable, "tensor-core attention needs bf16, head size 64 and sm_80+ (\(precision), \(headSize), sm_\(device.arch))")
        let dims: [CUDAKernelArg] = [.int(B), .int(T), .int(C), .int(NH)]
        // dQ first: it writes D for every row (each row once), which dK/dV (same stream, so after it) reads
        try launch("attention_backward_dq_tc_kernel", CUDALaunchConfig.attentionTCQueryTiles(B: B, T: T, NH: NH),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(out), .pointer(lse), .pointer(scratch)] + dims)
        try launch("attention_backward_dkdv_tc_kernel", CUDALaunchConfig.attentionTCKeyTiles(B: B, T: T, NH: NH),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(lse), .pointer(scratch)] + dims)
    }
}
