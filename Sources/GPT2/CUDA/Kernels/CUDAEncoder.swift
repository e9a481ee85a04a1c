// Token + position embedding on the GPU: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:].
// Backward accumulates (+=) into the fp32 gradients dwte and dwpe without atomics: dwpe sums over
// the batch per (t, c); dwte walks host-built buckets (every position of one token, in order,
// see EncoderBuckets), so the result is deterministic. Mirrors Kernels/Encoder.swift.
// Reference: llm.c encoder.cuh (encoder_forward_kernel3, wte_backward_kernel).
// Legend: B batch, T time, C channels.

extension CUDAKernelSource {
    static let encoderKernels = CUDAKernelSource(
        name: "encoder",
        kernels: ["encoder_forward_kernel", "encoder_backward_wpe_kernel", "encoder_backward_wte_kernel"],
        code: #"""
        // out (B,T,C); inp (B,T) token ids; wte (Vp,C); wpe (maxT,C). One thread per element.
        extern "C" __global__ void encoder_forward_kernel(floatX* out, const int* inp, const floatX* wte,
                                                          const floatX* wpe, int B, int T, int C) {
            size_t N = (size_t)B * T * C;
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
                size_t bt = i / C;
                int c = (int)(i % C), t = (int)(bt % T);
                int ix = inp[bt];
                out[i] = tox(tof(wte[(size_t)ix * C + c]) + tof(wpe[(size_t)t * C + c]));
            }
        }

        // dwpe (maxT,C) +=; dout (B,T,C). One thread per (t, c), summing over b in order.
        extern "C" __global__ void encoder_backward_wpe_kernel(float* dwpe, const floatX* dout, int B, int T, int C) {
            size_t N = (size_t)T * C;
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
                float s = 0.0f;
                for (int b = 0; b < B; b++) s += tof(dout[(size_t)b * T * C + i]);
                dwpe[i] += s;
            }
        }

        // dwte (Vp,C) +=; dout (B,T,C). Bucket k holds token tokens[k] and the positions
        // positions[starts[k] ..< starts[k+1]] (indices into B*T). One block per bucket; the
        // threads stride over channels, so each dwte row is written by exactly one block.
        extern "C" __global__ void encoder_backward_wte_kernel(float* dwte, const floatX* dout, const int* starts,
                                                               const int* positions, const int* tokens,
                                                               int numBuckets, int C) {
            int k = blockIdx.x;
            if (k >= numBuckets) return;
            int lo = starts[k], hi = starts[k + 1];
            float* row = dwte + (size_t)tokens[k] * C;
            for (int c = threadIdx.x; c < C; c += blockDim.x) {
                float s = 0.0f;
                for (int p = lo; p < hi; p++) s += tof(dout[(size_t)positions[p] * C + c]);
                row[c] += s;
            }
        }
        """#)
}

// MARK: - Launch sizes

extension CUDALaunchConfig {
    /// encoder_backward_wte_kernel: a block per bucket (distinct token), threads over channels.
    public static func encoderBackwardWTE(buckets: Int, C: Int) -> Launch {
        Launch(grid: Dim3(max(1, buckets)), block: Dim3(min(256, max(32, ceilDiv(C, 32) * 32))))
    }
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// encoder_forward_kernel: out (B,T,C) = wte[inp] + wpe[t]; inp (B,T) int32; wte (Vp,C), wpe (maxT,C) floatX.
    /// Position t of a row reads wpe row t: pass wpe + p0·C to start the rows at position p0.
    func encoderForward(out: CUdeviceptr, inp: CUdeviceptr, wte: CUdeviceptr, wpe: CUdeviceptr, B: Int, T: Int, C: Int) throws {
        try launch("encoder_forward_kernel", CUDALaunchConfig.elementwise(count: B * T * C, multiprocessors: sms),
                   [.pointer(out), .pointer(inp), .pointer(wte), .pointer(wpe), .int(B), .int(T), .int(C)])
    }

    /// encoder_backward_wpe_kernel: dwpe (maxT,C) += Σ_b dout (B,T,C) (fp32).
    func encoderBackwardWPE(dwpe: CUdeviceptr, dout: CUdeviceptr, B: Int, T: Int, C: Int) throws {
        try launch("encoder_backward_wpe_kernel", CUDALaunchConfig.elementwise(count: T * C, multiprocessors: sms),
                   [.pointer(dwpe), .pointer(dout), .int(B), .int(T), .int(C)])
    }

    /// encoder_backward_wte_kernel: dwte (Vp,C) += dout rows gathered by token buckets (fp32).
    func encoderBackwardWTE(dwte: CUdeviceptr, dout: CUdeviceptr, starts: CUdeviceptr, positions: CUdeviceptr,
                            tokens: CUdeviceptr, buckets: Int, C: Int) throws {
        try launch("encoder_backward_wte_kernel", CUDALaunchConfig.encoderBackwardWTE(buckets: buckets, C: C),
                   [.pointer(dwte), .pointer(dout), .pointer(starts), .pointer(positions), .pointer(tokens),
                    .int(buckets), .int(C)])
    }

    /// dwte (Vp,C) +=, dwpe (maxT,C) += (fp32); dout (B,T,C); buckets of the inputs (B,T).
    func encoderBackward(dwte: CUdeviceptr, dwpe: CUdeviceptr, dout: CUdeviceptr, buckets: CUDAContext.DeviceBuckets,
                                B: Int, T: Int, C: Int) throws {
        try encoderBackwardWPE(dwpe: dwpe, dout: dout, B: B, T: T, C: C)
        if buckets.count > 0 {
            try encoderBackwardWTE(dwte: dwte, dout: dout, starts: buckets.starts.pointer, positions: buckets.positions.pointer,
                                   tokens: buckets.tokens.pointer, buckets: buckets.count, C: C)
        }
    }
}

extension CUDAContext {
    /// Device copies of `EncoderBuckets`: starts (n+1), positions (B·T), tokens (n).
    public struct DeviceBuckets {
        public let starts: CUDABuffer, positions: CUDABuffer, tokens: CUDABuffer
        public let count: Int
    }

    public func uploadBuckets(_ b: EncoderBuckets) throws -> DeviceBuckets {
        let s = try allocate(bytes: b.starts.count * 4), p = try allocate(bytes: max(1, b.positions.count) * 4)
        let t = try allocate(bytes: max(1, b.tokens.count) * 4)
        try b.starts.withUnsafeBytes { try upload(s.pointer, $0.baseAddress!, bytes: $0.count) }
        if !b.positions.isEmpty { try b.positions.withUnsafeBytes { try upload(p.pointer, $0.baseAddress!, bytes: $0.count) } }
        if !b.tokens.isEmpty { try b.tokens.withUnsafeBytes { try upload(t.pointer, $0.baseAddress!, bytes: $0.count) } }
        return DeviceBuckets(starts: s, positions: p, tokens: t, count: b.count)
    }
}

/// Token buckets for the deterministic dwte backward: every distinct token with the positions
/// (indices into B·T) where it occurs, in increasing order. Built on the host from the inputs.
public struct EncoderBuckets: Equatable, Sendable {
    /// Bucket k covers positions[starts[k] ..< starts[k+1]]; count = buckets + 1.
    public var starts: [Int32]
    public var positions: [Int32]
    /// The token of each bucket.
    public var tokens: [Int32]

    public var count: Int { tokens.count }

    /// - Parameter inputs: B·T token ids (non-negative).
    public init(inputs: UnsafeBufferPointer<Int32>) {
        // counting sort by token (stable, so positions stay increasing inside a bucket): O(n + V),
        // it runs on the host every step (65,536 ids at B=64, T=1024)
        let n = inputs.count
        let maxToken = Int(inputs.max() ?? 0)
        var next = [Int32](repeating: 0, count: maxToken + 1)   // count, then the next free slot, per token
        for t in inputs { next[Int(t)] += 1 }
        var starts: [Int32] = [], tokens: [Int32] = []
        var running: Int32 = 0
        for v in 0...maxToken {
            let c = next[v]
            next[v] = running
            if c > 0 { tokens.append(Int32(v)); starts.append(running) }
            running += c
        }
        starts.append(Int32(n))
        var positions = [Int32](repeating: 0, count: n)
        for i in 0..<n {
            let t = Int(inputs[i])
            positions[Int(next[t])] = Int32(i)
            next[t] += 1
        }
        self.starts = starts
        self.tokens = tokens
        self.positions = positions
    }

    public init(inputs: [Int32]) {
        self = inputs.withUnsafeBufferPointer { EncoderBuckets(inputs: $0) }
    }
}
