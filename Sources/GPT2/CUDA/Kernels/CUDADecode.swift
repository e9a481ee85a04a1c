// KV-cache decoding on the GPU. After each layer's qkv matmul, `kv_cache_write_kernel` scatters
// the k and v thirds of the new rows into the layer's cache; `decode_attention_kernel` then lets
// every new query attend over the cached positions up to its own (causal over the cache), so
// one call serves a prefill after earlier tokens (n > 1) and single-token steps (n = 1). A
// prefill into an empty cache uses the training attention kernels instead (the same causal
// attention over the n new rows, on the tensor cores in bf16). Scores, softmax and the weighted
// sum are fp32 whatever floatX is; no lse is kept (nothing runs backward). Mirrors the
// attention loop of Inference/CPUDecoder.swift. Reference: llm.c has no decoder; the kernel is
// the textbook one (one block per query row and head).
// Legend: S samples, n new positions per sample, pos0 positions already cached, maxLength cache
// capacity, C channels, NH heads, HS = C/NH; qkv (S·n, 3C) = [q | k | v]; caches (S, maxLength, C).

extension CUDAKernelSource {
    /// Block size of decode_attention_kernel (a multiple of the head size up to 256 keeps every
    /// thread busy in the weighted sum).
    public enum DecodeTiling {
        public static let threads = 256
        /// Static shared memory of decode_attention_kernel besides the scores: q (HS), the
        /// reduction buffer (32) and the partial outputs (threads), in bytes, for HS <= 256.
        public static let staticSharedBytes = (256 + 32 + threads) * 4
        /// The default dynamic shared memory limit (no opt-in): scores of at most this many positions.
        public static let maxPositions = (49152 - staticSharedBytes) / 4
    }

    static let decodeKernels = CUDAKernelSource(
        name: "decode",
        kernels: ["kv_cache_write_kernel", "decode_attention_kernel"],
        code: #"""
        #ifndef ATT_HS
        #define ATT_HS 64                 // head size; the host passes -DATT_HS=C/NH
        #endif
        #define DEC_THREADS 256           // DecodeTiling.threads
        #if ATT_HS > DEC_THREADS
        #error "decode attention needs ATT_HS <= 256"
        #endif

        // kcache, vcache (S, maxLength, C) of one layer: positions pos0 .. pos0+n-1 of every sample
        // receive the k and v thirds of qkv (S*n, 3C), whose row r = s*n + j is position pos0 + j
        // of sample s. One thread per written element.
        extern "C" __global__ void kv_cache_write_kernel(floatX* kcache, floatX* vcache, const floatX* qkv,
                                                         int S, int n, int pos0, int maxLength, int C) {
            size_t total = (size_t)S * n * C;
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
                size_t r = i / C;
                int c = (int)(i % C), s = (int)(r / n), j = (int)(r % n);
                size_t dst = ((size_t)s * maxLength + pos0 + j) * C + c;
                const floatX* row = qkv + r * 3 * C;
                kcache[dst] = row[C + c];
                vcache[dst] = row[2 * C + c];
            }
        }

        // out (S*n, C): for row r = s*n + j and head h (block (r, h)), softmax(scale · q·kᵤ) over the
        // cached positions u = 0 .. pos0+j of sample s, times vᵤ. The query comes from qkv (S*n, 3C);
        // keys and values from the caches, which already hold positions up to pos0+n-1. Phases: scores
        // (a thread per key) into dynamic shared memory of pos0+n floats, the block max, exponentials
        // and their block sum, then the weighted sum with thread (g, d) adding keys u ≡ g (mod groups)
        // of dimension d, and the groups added in order.
        extern "C" __global__ void decode_attention_kernel(floatX* out, const floatX* qkv, const floatX* kcache,
                                                           const floatX* vcache, int S, int n, int pos0, int maxLength,
                                                           int C, int NH) {
            extern __shared__ float scores[];   // (pos0 + n)
            __shared__ float q[ATT_HS];
            __shared__ float red[32];
            __shared__ float part[DEC_THREADS];
            int r = blockIdx.x, h = blockIdx.y;
            int s = r / n, t = pos0 + r % n;    // the last visible key
            const floatX* qrow = qkv + (size_t)r * 3 * C + h * ATT_HS;
            for (int d = threadIdx.x; d < ATT_HS; d += blockDim.x) q[d] = tof(qrow[d]);
            __syncthreads();
            const float scale = 1.0f / sqrtf((float)ATT_HS);
            const floatX* kbase = kcache + (size_t)s * maxLength * C + h * ATT_HS;
            const floatX* vbase = vcache + (size_t)s * maxLength * C + h * ATT_HS;
            float mx = NEG_INF;
            for (int u = threadIdx.x; u <= t; u += blockDim.x) {
                const floatX* k = kbase + (size_t)u * C;
                float dot = 0.0f;
                #pragma unroll 8
                for (int d = 0; d < ATT_HS; d++) dot += q[d] * tof(k[d]);
                float sc = dot * scale;
                scores[u] = sc;
                mx = fmaxf(mx, sc);
            }
            mx = blockMax(mx, red);
            float sum = 0.0f;
            for (int u = threadIdx.x; u <= t; u += blockDim.x) {
                float p = expf(scores[u] - mx);
                scores[u] = p;
                sum += p;
            }
            sum = blockSum(sum, red);           // its barriers also publish every thread's scores
            int groups = DEC_THREADS / ATT_HS, g = threadIdx.x / ATT_HS, d = threadIdx.x % ATT_HS;
            float acc = 0.0f;
            if (g < groups) {
                for (int u = g; u <= t; u += groups) acc += scores[u] * tof(vbase[(size_t)u * C + d]);
            }
            part[threadIdx.x] = acc;
            __syncthreads();
            if (threadIdx.x < ATT_HS) {
                float o = 0.0f;
                for (int k = 0; k < groups; k++) o += part[k * ATT_HS + threadIdx.x];
                out[(size_t)r * C + h * ATT_HS + threadIdx.x] = tox(o / sum);
            }
        }
        """#)
}

// MARK: - Launch sizes

extension CUDALaunchConfig {
    /// decode_attention_kernel: a block of DecodeTiling.threads per (new row, head); the scores of
    /// the pos0 + n visible positions in dynamic shared memory.
    public static func decodeAttention(rows: Int, NH: Int, positions: Int) -> Launch {
        let t = CUDAKernelSource.DecodeTiling.self
        precondition(positions >= 1 && positions <= t.maxPositions, "decode attention holds at most \(t.maxPositions) positions (got \(positions))")
        return Launch(grid: Dim3(max(1, rows), NH), block: Dim3(t.threads), sharedBytes: positions * 4)
    }
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// kv_cache_write_kernel: kcache, vcache (S, maxLength, C) of one layer, positions pos0 ..< pos0+n,
    /// from the k and v thirds of qkv (S·n, 3C).
    func kvCacheWrite(kcache: CUdeviceptr, vcache: CUdeviceptr, qkv: CUdeviceptr, S: Int, n: Int, pos0: Int,
                      maxLength: Int, C: Int) throws {
        precondition(pos0 >= 0 && n >= 1 && pos0 + n <= maxLength, "kvCacheWrite: positions \(pos0)..<\(pos0 + n) outside a cache of \(maxLength)")
        try launch("kv_cache_write_kernel", CUDALaunchConfig.elementwise(count: S * n * C, multiprocessors: sms),
                   [.pointer(kcache), .pointer(vcache), .pointer(qkv), .int(S), .int(n), .int(pos0), .int(maxLength), .int(C)])
    }

    /// decode_attention_kernel: out (S·n, C) = causal attention of the n new queries per sample in
    /// qkv (S·n, 3C) over the cached positions 0 ..< pos0+n of kcache, vcache (S, maxLength, C).
    func decodeAttention(out: CUdeviceptr, qkv: CUdeviceptr, kcache: CUdeviceptr, vcache: CUdeviceptr, S: Int, n: Int,
                         pos0: Int, maxLength: Int, C: Int, NH: Int) throws {
        precondition(C / NH == headSize, "attention compiled for head size \(headSize), model has \(C / NH)")
        precondition(pos0 >= 0 && n >= 1 && pos0 + n <= maxLength, "decodeAttention: positions \(pos0)..<\(pos0 + n) outside a cache of \(maxLength)")
        try launch("decode_attention_kernel", CUDALaunchConfig.decodeAttention(rows: S * n, NH: NH, positions: pos0 + n),
                   [.pointer(out), .pointer(qkv), .pointer(kcache), .pointer(vcache), .int(S), .int(n), .int(pos0),
                    .int(maxLength), .int(C), .int(NH)])
    }
}
