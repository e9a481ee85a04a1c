// Softmax + cross-entropy over the vocabulary in chunks, so no (B,T,Vp) logits buffer exists:
// the LM head matmul produces one (N, Vc) floatX chunk of logits at a time (columns v0 ..< v0+Vc).
// Forward folds each chunk into a running (max, sum of exp) per row in fp32 — the online softmax —
// and picks up the target's logit; `classifier_finalize_kernel` turns them into lse and losses.
// Backward recomputes each chunk's logits (unless the whole vocabulary is one chunk: then the
// forward pass's logits are still there) and overwrites them in place with
// dlogits = (softmax - onehot(target)) * dloss; columns >= V (padding) get 0.
// Mirrors Kernels/CrossEntropy.swift (lse = max + log(sum), loss = lse - logit[target]).
// Reference: llm.c fused_classifier_kernel5 (cross-entropy in fp32 over floatX logits).
// Legend: N rows (B*T), V vocab, Vc columns in this chunk, v0 first vocab id of the chunk.

extension CUDAKernelSource {
    static let classifierKernels = CUDAKernelSource(
        name: "classifier",
        kernels: ["classifier_init_kernel", "classifier_chunk_forward_kernel", "classifier_finalize_kernel",
                  "classifier_chunk_backward_kernel"],
        code: #"""
        // runMax (N) = -inf, runSum (N) = 0, targetLogit (N) = 0: before the first chunk.
        extern "C" __global__ void classifier_init_kernel(float* runMax, float* runSum, float* targetLogit, int N) {
            int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i < N) { runMax[i] = NEG_INF; runSum[i] = 0.0f; targetLogit[i] = 0.0f; }
        }

        // Folds x into a running (max m, sum s of exp(· - m)).
        __device__ __forceinline__ void onlineAdd(float& m, float& s, float x) {
            float mn = fmaxf(m, x);
            s = s * expf(m - mn) + expf(x - mn);   // m = -inf at first: expf(-inf) = 0
            m = mn;
        }

        // runMax, runSum (N) updated; targetLogit (N) written where the target lies in this chunk;
        // logits (N,Vc) this chunk; targets (N) or NULL. One block per row, one pass over the row
        // (each thread keeps its own online max and sum, 16-byte loads), then a block reduction.
        extern "C" __global__ void classifier_chunk_forward_kernel(float* runMax, float* runSum, float* targetLogit,
                                                                   const floatX* logits, const int* targets,
                                                                   int N, int Vc, int v0, int V) {
            __shared__ float buf[32];
            int row = blockIdx.x;
            if (row >= N) return;
            const floatX* l = logits + (size_t)row * Vc;
            int valid = min(Vc, V - v0);          // real (unpadded) columns in this chunk
            float m = NEG_INF, s = 0.0f;
            int packs = aligned16(l) ? valid / XPACK : 0;
            for (int p = threadIdx.x; p < packs; p += blockDim.x) {
                PackX x = ((const PackX*)l)[p];
                #pragma unroll
                for (int k = 0; k < XPACK; k++) onlineAdd(m, s, tof(x.v[k]));
            }
            for (int j = packs * XPACK + threadIdx.x; j < valid; j += blockDim.x) onlineAdd(m, s, tof(l[j]));
            float mx = blockMax(m, buf);
            s = blockSum(m == NEG_INF ? 0.0f : s * expf(m - mx), buf);
            if (threadIdx.x == 0) {
                float M = runMax[row];
                float Mn = fmaxf(M, mx);
                // expf(-inf) = 0 handles the first chunk (M = -inf, runSum = 0)
                runSum[row] = runSum[row] * expf(M - Mn) + s * expf(mx - Mn);
                runMax[row] = Mn;
                if (targets) {
                    int t = targets[row] - v0;
                    if (t >= 0 && t < valid) targetLogit[row] = tof(l[t]);
                }
            }
        }

        // lse (N) = runMax + log(runSum); losses (N) = lse - targetLogit (skipped when NULL).
        extern "C" __global__ void classifier_finalize_kernel(float* losses, float* lse, const float* runMax,
                                                              const float* runSum, const float* targetLogit, int N) {
            int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i >= N) return;
            float z = runMax[i] + logf(runSum[i]);
            lse[i] = z;
            if (losses) losses[i] = z - targetLogit[i];
        }

        // In place: logits (N,Vc) of this chunk become dlogits = (exp(l - lse) - [v == target]) * dloss,
        // 0 in padded columns; lse, targets (N); dloss = gradient of each row's loss (1/(B*T)).
        // Blocks walk the rows; threads walk a row's columns in 16-byte packs when aligned.
        __device__ __forceinline__ float dlogit(float x, int j, int valid, int t, float z, float dloss) {
            if (j >= valid) return 0.0f;
            float d = expf(x - z) * dloss;
            return j == t ? d - dloss : d;
        }
        extern "C" __global__ void classifier_chunk_backward_kernel(floatX* logits, const float* lse, const int* targets,
                                                                    float dloss, int N, int Vc, int v0, int V) {
            int valid = min(Vc, V - v0);
            for (int row = blockIdx.x; row < N; row += gridDim.x) {
                floatX* l = logits + (size_t)row * Vc;
                float z = lse[row];
                int t = targets[row] - v0;
                int packs = (aligned16(l) && Vc % XPACK == 0) ? Vc / XPACK : 0;
                for (int p = threadIdx.x; p < packs; p += blockDim.x) {
                    PackX x = ((const PackX*)l)[p], o;
                    #pragma unroll
                    for (int k = 0; k < XPACK; k++) o.v[k] = tox(dlogit(tof(x.v[k]), p * XPACK + k, valid, t, z, dloss));
                    ((PackX*)l)[p] = o;
                }
                for (int j = packs * XPACK + threadIdx.x; j < Vc; j += blockDim.x) l[j] = tox(dlogit(tof(l[j]), j, valid, t, z, dloss));
            }
        }
        """#)
}

// MARK: - Launch sizes

extension CUDALaunchConfig {
    /// classifier_chunk_forward_kernel: one block per row.
    public static func classifierRows(N: Int) -> Launch {
        Launch(grid: Dim3(max(1, N)), block: Dim3(256))
    }

    /// Columns of the LM-head logits chunk: a multiple of 128 (cuBLASLt alignment) of at most
    /// `maxChunk`, and no more than Vp needs.
    public static func vocabChunk(Vp: Int, maxChunk: Int = 8192) -> Int {
        min(ceilDiv(Vp, 128) * 128, max(128, maxChunk / 128 * 128))
    }
}

// MARK: - Launchers

extension CUDAContext {
    /// Scratch of the chunked classifier: (runMax, runSum, targetLogit) fp32 (N rows each).
    public struct ClassifierScratch {
        public let runMax: CUdeviceptr, runSum: CUdeviceptr, targetLogit: CUdeviceptr
        /// The allocations behind the addresses (empty for a view).
        let buffers: [CUDABuffer]

        /// Allocates the scratch of `rows` rows on `context`.
        public init(context: CUDAContext, rows: Int) throws {
            let b = try (0..<3).map { _ in try context.allocateF(rows) }
            (runMax, runSum, targetLogit, buffers) = (b[0].pointer, b[1].pointer, b[2].pointer, b)
        }

        /// A view of existing device memory.
        init(runMax: CUdeviceptr, runSum: CUdeviceptr, targetLogit: CUdeviceptr) {
            (self.runMax, self.runSum, self.targetLogit, buffers) = (runMax, runSum, targetLogit, [])
        }
    }
}

extension CUDAKernelLauncher {
    /// classifier_init_kernel: the running softmax of N rows before the first chunk.
    func classifierInit(_ s: CUDAContext.ClassifierScratch, N: Int) throws {
        try launch("classifier_init_kernel", CUDALaunchConfig.cover(count: N),
                   [.pointer(s.runMax), .pointer(s.runSum), .pointer(s.targetLogit), .int(N)])
    }

    /// classifier_chunk_forward_kernel: folds the logits chunk (N, Vc) = vocab columns v0 ..< v0+Vc
    /// into the running softmax (targets (N) int32, or nil).
    func classifierChunkForward(_ s: CUDAContext.ClassifierScratch, logits: CUdeviceptr, targets: CUdeviceptr?,
                                       N: Int, Vc: Int, v0: Int, V: Int) throws {
        guard v0 < V else { return }   // only padding in this chunk
        try launch("classifier_chunk_forward_kernel", CUDALaunchConfig.classifierRows(N: N),
                   [.pointer(s.runMax), .pointer(s.runSum), .pointer(s.targetLogit),
                    .pointer(logits), .pointer(targets ?? 0), .int(N), .int(Vc), .int(v0), .int(V)])
    }

    /// classifier_finalize_kernel: losses (N) (0 to skip), lse (N) from the running softmax.
    func classifierFinalize(_ s: CUDAContext.ClassifierScratch, losses: CUdeviceptr, lse: CUdeviceptr, N: Int) throws {
        try launch("classifier_finalize_kernel", CUDALaunchConfig.cover(count: N),
                   [.pointer(losses), .pointer(lse), .pointer(s.runMax), .pointer(s.runSum),
                    .pointer(s.targetLogit), .int(N)])
    }

    /// classifier_chunk_backward_kernel: in place, the logits chunk (N, Vc) becomes
    /// dlogits = (softmax − onehot)·dloss.
    func classifierChunkBackward(logits: CUdeviceptr, lse: CUdeviceptr, targets: CUdeviceptr, dloss: Float,
                                        N: Int, Vc: Int, v0: Int, V: Int) throws {
        try launch("classifier_chunk_backward_kernel", CUDALaunchConfig.classifierRows(N: N),
                   [.pointer(logits), .pointer(lse), .pointer(targets), .float(dloss), .int(N), .int(Vc), .int(v0), .int(V)])
    }
}
