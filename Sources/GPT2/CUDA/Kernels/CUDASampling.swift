// Choosing the next token on the GPU from fp32 logits, exactly as Inference/Sampler.swift's `pick`
// does on the host, so that only the chosen ids cross back:
// - greedy (temperature 0): the first maximum, as torch.argmax;
// - top-k (0 < k < V, k <= SamplingTiling.maxTopK): the k largest logits, ties to the lower id (the
//   host's insertion sort keeps the earlier of equal logits), found by a radix select on
//   order-preserving 32-bit keys (four 8-bit digit histograms find the k-th largest key, then the
//   ids above it and the lowest-numbered ones equal to it are gathered) and a bitonic sort in
//   shared memory, largest first;
// - every token (k = 0, or k >= V): in id order.
// Then, as the host: weights w = Float(exp(Double((x - max) / temperature))), their total summed
// in that order in fp32 by one thread, u = uniform · total, and the first token whose running sum
// exceeds u (the last if none). The uniform is the host's rng.nextFloat() for that sample, drawn
// in sample order and uploaded with the step. Equal arithmetic in equal order: given the same
// logits the draw is the host's, up to CUDA's exp(double) (1 ulp) against glibc's, which can
// change a weight's fp32 rounding about once in 2^29.
// Legend: S samples, V vocabulary, Vp padded vocabulary (the logits' row stride).

extension CUDAKernelSource {
    /// Block size and capacity of sample_kernel.
    public enum SamplingTiling {
        /// Threads per sample (one candidate each in the sort).
        public static let threads = 1024
        /// The largest top-k drawn on the device; a larger k (below V) is drawn on the host.
        public static let maxTopK = 1024
    }

    static let samplingKernels = CUDAKernelSource(
        name: "sampling",
        kernels: ["sample_kernel"],
        code: #"""
        #define SMP_THREADS 1024          // SamplingTiling.threads
        #define SMP_MAX_K 1024            // SamplingTiling.maxTopK (<= SMP_THREADS: one candidate per thread)
        #define SMP_NO_ID 0x7fffffff

        // Order-preserving key: a larger float has a larger unsigned key. -0 becomes +0 first: the
        // host compares floats, for which the two are equal.
        __device__ __forceinline__ unsigned int sampleKey(float x) {
            unsigned int b = __float_as_uint(x == 0.0f ? 0.0f : x);
            return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
        }
        // Whether (va, ia) comes before (vb, ib) in the host's top-k list: larger logit first, lower id among equals.
        __device__ __forceinline__ bool sampleBefore(float va, int ia, float vb, int ib) {
            return va > vb || (va == vb && ia < ib);
        }
        // The host's weight of a logit: exp in double, rounded to float.
        __device__ __forceinline__ float sampleWeight(float x, float mx, float temperature) {
            return (float)exp((double)((x - mx) / temperature));
        }

        // 1024 threads per block: at most 64 registers per thread.
        extern "C" __global__ __launch_bounds__(SMP_THREADS) void sample_kernel(int*, float*, const float*, const float*, int, int, int, float);

        // ids (S) = the token chosen for each sample from logits (S, Vp) fp32 (columns 0..V-1);
        // uniforms (S) in [0, 1) (unused when greedy); weights (S, Vp) fp32 scratch for the draw over
        // every token (unused otherwise). One block of SMP_THREADS per sample.
        extern "C" __global__ void sample_kernel(int* ids, float* weights, const float* logits, const float* uniforms,
                                                 int V, int Vp, int topK, float temperature) {
            __shared__ float candV[SMP_MAX_K];
            __shared__ int candI[SMP_MAX_K];
            __shared__ unsigned int hist[256];
            __shared__ int warpCount[32];
            __shared__ float redF[32];
            __shared__ int redI[32];
            __shared__ unsigned int selPrefix;
            __shared__ int selRemaining, gtSlots;
            int s = blockIdx.x, tid = threadIdx.x, lane = tid % WARP_SIZE, warp = tid / WARP_SIZE;
            int nwarps = blockDim.x / WARP_SIZE;
            const float* x = logits + (size_t)s * Vp;

            if (temperature <= 0.0f) {
                // the first maximum: per thread over increasing ids (strict >), then (value, lower id) reductions
                float bv = NEG_INF;
                int bi = SMP_NO_ID;
                for (int i = tid; i < V; i += blockDim.x) {
                    float v = x[i];
                    if (v > bv || bi == SMP_NO_ID) { bv = v; bi = i; }
                }
                for (int o = WARP_SIZE / 2; o > 0; o >>= 1) {
                    float ov = __shfl_xor_sync(FULL_MASK, bv, o);
                    int oi = __shfl_xor_sync(FULL_MASK, bi, o);
                    if (oi != SMP_NO_ID && (bi == SMP_NO_ID || sampleBefore(ov, oi, bv, bi))) { bv = ov; bi = oi; }
                }
                if (lane == 0) { redF[warp] = bv; redI[warp] = bi; }
                __syncthreads();
                if (tid == 0) {
                    float v = redF[0];
                    int id = redI[0];
                    for (int w = 1; w < nwarps; w++) {
                        if (redI[w] != SMP_NO_ID && (id == SMP_NO_ID || sampleBefore(redF[w], redI[w], v, id))) { v = redF[w]; id = redI[w]; }
                    }
                    ids[s] = id;
                }
                return;
            }

            if (topK > 0 && topK < V) {
                // 1. the k-th largest key K: one 8-bit digit per pass, most significant first, among
                //    the keys that share the digits found so far
                unsigned int prefix = 0, mask = 0;
                int remaining = topK;             // how many of the keys matching `prefix` are still wanted
                for (int shift = 24; shift >= 0; shift -= 8) {
                    for (int b = tid; b < 256; b += blockDim.x) hist[b] = 0;
                    __syncthreads();
                    for (int i = tid; i < V; i += blockDim.x) {
                        unsigned int key = sampleKey(x[i]);
                        if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
                    }
                    __syncthreads();
                    if (tid == 0) {
                        int above = 0, d = 255;
                        for (; d > 0; d--) {
                            int c = (int)hist[d];
                            if (above + c >= remaining) break;
                            above += c;
                        }
                        selPrefix = prefix | ((unsigned int)d << shift);
                        selRemaining = remaining - above;
                    }
                    __syncthreads();
                    prefix = selPrefix;
                    remaining = selRemaining;
                    mask |= 255u << shift;
                }
                // now: topK - remaining keys are above K, and the `remaining` lowest ids equal to K complete the set
                int greater = topK - remaining;
                if (tid == 0) gtSlots = 0;
                __syncthreads();
                for (int i = tid; i < V; i += blockDim.x) {
                    if (sampleKey(x[i]) > prefix) {
                        int slot = atomicAdd(&gtSlots, 1);
                        candV[slot] = x[i];
                        candI[slot] = i;
                    }
                }
                // 2. the equal keys in id order: a chunk of blockDim ids at a time, ranked by ballots
                int taken = 0;                    // equal keys in earlier chunks (the same in every thread)
                for (int base = 0; base < V && taken < remaining; base += blockDim.x) {
                    int i = base + tid;
                    bool eq = i < V && sampleKey(x[i]) == prefix;
                    unsigned int ballot = __ballot_sync(FULL_MASK, eq);
                    if (lane == 0) warpCount[warp] = __popc(ballot);
                    __syncthreads();
                    int rank = taken + __popc(ballot & ((1u << lane) - 1u)), total = 0;
                    for (int w = 0; w < nwarps; w++) {
                        if (w < warp) rank += warpCount[w];
                        total += warpCount[w];
                    }
                    if (eq && rank < remaining) { candV[greater + rank] = x[i]; candI[greater + rank] = i; }
                    taken += total;
                    __syncthreads();              // warpCount is rewritten by the next chunk
                }
                // 3. bitonic sort of the power of two P >= topK slots, padding last, largest logit first
                int P = 1;
                while (P < topK) P <<= 1;
                if (tid >= topK && tid < P) { candV[tid] = NEG_INF; candI[tid] = SMP_NO_ID; }
                for (int size = 2; size <= P; size <<= 1) {
                    for (int stride = size >> 1; stride > 0; stride >>= 1) {
                        __syncthreads();
                        int partner = tid ^ stride;
                        if (tid < P && partner > tid) {
                            float va = candV[tid], vb = candV[partner];
                            int ia = candI[tid], ib = candI[partner];
                            bool first = (tid & size) == 0;   // this pair goes in list order, else reversed
                            if (first ? sampleBefore(vb, ib, va, ia) : sampleBefore(va, ia, vb, ib)) {
                                candV[tid] = vb; candV[partner] = va;
                                candI[tid] = ib; candI[partner] = ia;
                            }
                        }
                    }
                }
                __syncthreads();
                // 4. weights in parallel, then the host's sequential sum and draw
                float mx = candV[0];
                __syncthreads();
                if (tid < topK) candV[tid] = sampleWeight(candV[tid], mx, temperature);
                __syncthreads();
                if (tid == 0) {
                    float total = 0.0f;
                    for (int i = 0; i < topK; i++) total += candV[i];
                    float u = uniforms[s] * total, acc = 0.0f;
                    int id = candI[topK - 1];
                    for (int i = 0; i < topK; i++) {
                        acc += candV[i];
                        if (u < acc) { id = candI[i]; break; }
                    }
                    ids[s] = id;
                }
                return;
            }

            // every token, in id order: the max, the weights into global scratch, then the sequential draw
            float m = NEG_INF;
            for (int i = tid; i < V; i += blockDim.x) m = fmaxf(m, x[i]);
            m = blockMax(m, redF);
            float* w = weights + (size_t)s * Vp;
            for (int i = tid; i < V; i += blockDim.x) w[i] = sampleWeight(x[i], m, temperature);
            __syncthreads();                      // the block's global writes are visible to thread 0 after the barrier
            if (tid == 0) {
                float total = 0.0f;
                for (int i = 0; i < V; i++) total += w[i];
                float u = uniforms[s] * total, acc = 0.0f;
                int id = V - 1;
                for (int i = 0; i < V; i++) {
                    acc += w[i];
                    if (u < acc) { id = i; break; }
                }
                ids[s] = id;
            }
        }
        """#)
}

// MARK: - Launch sizes

extension CUDALaunchConfig {
    /// sample_kernel: one block of SamplingTiling.threads per sample.
    public static func sample(samples S: Int) -> Launch {
        Launch(grid: Dim3(max(1, S)), block: Dim3(CUDAKernelSource.SamplingTiling.threads))
    }
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// sample_kernel: ids (S) int32 from logits (S, Vp) fp32 by `Sampler`'s rule for `topK` and
    /// `temperature` (greedy when temperature <= 0; top-k needs topK <= SamplingTiling.maxTopK
    /// unless topK is 0 or >= V); uniforms (S) fp32 draws (0 when greedy); weights (S, Vp) fp32
    /// scratch for the draw over every token (0 otherwise).
    func sample(ids: CUdeviceptr, weights: CUdeviceptr, logits: CUdeviceptr, uniforms: CUdeviceptr, S: Int, V: Int, Vp: Int,
                topK: Int, temperature: Float) throws {
        precondition(topK >= 0 && (topK == 0 || topK >= V || topK <= CUDAKernelSource.SamplingTiling.maxTopK || temperature <= 0),
                     "sample: top-k \(topK) is drawn on the host above \(CUDAKernelSource.SamplingTiling.maxTopK)")
        try launch("sample_kernel", CUDALaunchConfig.sample(samples: S),
                   [.pointer(ids), .pointer(weights), .pointer(logits), .pointer(uniforms), .int(V), .int(Vp), .int(topK),
                    .float(temperature)])
    }
}
