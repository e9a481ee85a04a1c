// Grid and block sizes for every kernel, as pure functions of the problem size and the device's
// SM count, so they are unit-tested without a GPU and the kernels' assumptions (block sizes that
// are multiples of 32, LayerNorm's LN_MAX_COLS, attention tiles) are stated in one place.
// Legend: N rows or elements, C channels, OC output channels, B batch, T time, NH heads.

/// Launch configurations (pure).
public enum CUDALaunchConfig {
    /// A CUDA dim3.
    public struct Dim3: Equatable, Sendable, CustomStringConvertible {
        public var x: UInt32, y: UInt32, z: UInt32
        public init(_ x: Int, _ y: Int = 1, _ z: Int = 1) {
            precondition(x >= 1 && y >= 1 && z >= 1 && x <= Int(Int32.max) && y <= 65535 && z <= 65535,
                         "launch dimension (\(x), \(y), \(z)) out of range")
            self.x = UInt32(x); self.y = UInt32(y); self.z = UInt32(z)
        }
        public var count: Int { Int(x) * Int(y) * Int(z) }
        public var description: String { "(\(x), \(y), \(z))" }
    }

    /// Grid, block and dynamic shared memory of one launch.
    public struct Launch: Equatable, Sendable {
        public var grid: Dim3
        public var block: Dim3
        public var sharedBytes: Int = 0
    }

    /// Threads per block of the elementwise kernels.
    public static let elementwiseBlock = 256
    /// Blocks per SM a grid-stride kernel is given (enough to hide latency, few enough to loop).
    public static let blocksPerSM = 16
    /// Columns one LayerNorm-backward thread keeps in registers (LN_MAX_COLS in layernorm.cu).
    public static let layerNormMaxColumnsPerThread = 8
    /// Blocks of the first gradient-norm pass (fixed, so the sum order never changes).
    public static let gradNormBlocks = 1024

    static func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }

    /// Grid-stride elementwise kernels over `count` elements.
    public static func elementwise(count: Int, multiprocessors: Int) -> Launch {
        let blocks = max(1, min(ceilDiv(count, elementwiseBlock), max(1, multiprocessors) * blocksPerSM))
        return Launch(grid: Dim3(blocks), block: Dim3(elementwiseBlock))
    }

    /// One thread per element, no grid-stride loop: covers all `count` elements.
    public static func cover(count: Int, block: Int = elementwiseBlock) -> Launch {
        Launch(grid: Dim3(max(1, ceilDiv(count, block))), block: Dim3(block))
    }

    /// layernorm_forward_kernel / fused_residual_layernorm_forward_kernel: one warp per row, 8 warps per block.
    public static func layerNormForward(rows N: Int) -> Launch {
        Launch(grid: Dim3(max(1, ceilDiv(N, 8))), block: Dim3(256))
    }

    /// layernorm_backward_kernel: a block per chunk of rows; each thread holds at most
    /// `layerNormMaxColumnsPerThread` columns, so the block has ceil(C/8) threads rounded up to a
    /// warp (at least 128, at most 1024). Its scratch is grid.x × 2C floats.
    public static func layerNormBackward(rows N: Int, C: Int, multiprocessors: Int) -> Launch {
        precondition(C <= 1024 * layerNormMaxColumnsPerThread, "LayerNorm backward supports C <= 8192 (got \(C))")
        let threads = min(1024, max(128, ceilDiv(ceilDiv(C, layerNormMaxColumnsPerThread), 32) * 32))
        let blocks = max(1, min(N, max(1, multiprocessors) * 8))
        return Launch(grid: Dim3(blocks), block: Dim3(threads))
    }

    /// layernorm_backward_warp_kernel: warps of one row each, 8 per block or fewer so that their
    /// dynamic shared memory (warps × 2C floats) stays within the default 48 KiB; 4 blocks per SM.
    /// nil when the kernel does not apply (C not a whole number of 16-byte packs, or C too large).
    /// Its scratch is grid.x × 2C floats.
    public static func layerNormBackwardWarp(rows N: Int, C: Int, elementSize: Int, multiprocessors: Int) -> Launch? {
        let pack = 16 / elementSize
        let warps = min(8, 49152 / (8 * C))
        guard C % pack == 0, warps >= 1 else { return nil }
        let blocks = max(1, min(ceilDiv(N, warps), max(1, multiprocessors) * 4))
        return Launch(grid: Dim3(blocks), block: Dim3(warps * 32), sharedBytes: warps * 2 * C * 4)
    }

    /// One warp per row, 8 rows per block (attention_backward_preprocess_kernel).
    public static func warpPerRow(rows N: Int) -> Launch {
        Launch(grid: Dim3(max(1, ceilDiv(N, 8))), block: Dim3(256))
    }

    /// bias_backward_partial_kernel: block (32, 16), each thread over 16 bytes of columns
    /// (`16 / elementSize` of them), so a block covers 32 · that many columns; grid.y row chunks,
    /// about 2 blocks per SM in all (the chunks' partial rows are then added by column_sum_kernel,
    /// so fewer, longer chunks keep that cheap). Its scratch is grid.y × OC floats.
    public static func biasBackward(rows N: Int, OC: Int, elementSize: Int, multiprocessors: Int) -> Launch {
        let columnBlocks = ceilDiv(OC, 32 * (16 / elementSize))
        let wanted = ceilDiv(max(1, multiprocessors) * 2, columnBlocks)
        let chunks = max(1, min(min(ceilDiv(N, 64), wanted), 1024))
        return Launch(grid: Dim3(columnBlocks, chunks), block: Dim3(32, 16))
    }

    /// column_sum_kernel over `cols` columns.
    public static func columnSum(cols: Int) -> Launch { cover(count: cols) }

    /// classifier_chunk_forward_kernel: one block per row.
    public static func classifierRows(N: Int) -> Launch {
        Launch(grid: Dim3(max(1, N)), block: Dim3(256))
    }

    /// attention_forward_kernel and attention_backward_dq_kernel: a block per (query tile, b·h).
    public static func attentionQueryTiles(B: Int, T: Int, NH: Int) -> Launch {
        let t = CUDAKernelSource.AttentionTiling.self
        return Launch(grid: Dim3(ceilDiv(T, t.queryRows), B * NH), block: Dim3(t.queryRows * t.threadsPerRow))
    }

    /// attention_backward_dkdv_kernel: a block per (key tile, b·h).
    public static func attentionKeyTiles(B: Int, T: Int, NH: Int) -> Launch {
        let t = CUDAKernelSource.AttentionTiling.self
        return Launch(grid: Dim3(ceilDiv(T, t.keyRows), B * NH), block: Dim3(t.keyRows * t.threadsPerRow))
    }

    /// encoder_backward_wte_kernel: a block per bucket (distinct token), threads over channels.
    public static func encoderBackwardWTE(buckets: Int, C: Int) -> Launch {
        Launch(grid: Dim3(max(1, buckets)), block: Dim3(min(256, max(32, ceilDiv(C, 32) * 32))))
    }

    /// grad_norm_partial_kernel (grid) then grad_norm_final_kernel (one block).
    public static func gradNorm() -> (partial: Launch, final: Launch) {
        (Launch(grid: Dim3(gradNormBlocks), block: Dim3(256)), Launch(grid: Dim3(1), block: Dim3(1024)))
    }

    /// Columns of the LM-head logits chunk: a multiple of 128 (cuBLASLt alignment) of at most
    /// `maxChunk`, and no more than Vp needs.
    public static func vocabChunk(Vp: Int, maxChunk: Int = 8192) -> Int {
        min(ceilDiv(Vp, 128) * 128, max(128, maxChunk / 128 * 128))
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
