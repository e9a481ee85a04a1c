// Batches of (inputs, targets) from token shards, as build-nanogpt's DataLoaderLite: each rank
// reads B·T+1 tokens at its own offset, advances by B·T·worldSize, moves to the next shard when
// the current one runs out, and wraps around. With `shuffle`, every epoch permutes the shard order
// and the documents (runs starting at <|endoftext|>) inside each shard, deterministically from
// the seed and the epoch: this removes build-nanogpt's periodic loss pattern.
// Shards are memory-mapped, and every shard is checked against the model's vocabulary when it is
// opened (one pass for the maximum id), so a corrupt id is reported, never fed to the kernels.
import Foundation

/// Where a loader is; saved in checkpoints so a resumed run reads exactly the same batches.
public struct DataPosition: Codable, Equatable, Sendable {
    public var epoch = 0
    /// Index into this epoch's shard order.
    public var shardCursor = 0
    /// Token offset of this rank's next batch in the current shard.
    public var position = 0
}

public enum DataLoaderError: LocalizedError, Equatable {
    case noShards(directory: String, split: String)
    case mixedFormats(directory: String)
    case shardTooSmall(path: String, tokens: Int, needed: Int)

    public var errorDescription: String? { oneLine(message) }

    /// The message before control characters from the file are escaped.
    private var message: String {
        switch self {
        case .noShards(let d, let s):
            return "no \(s) shards (*_\(s)_*.npy or .bin) in '\(d)'; create them with 'gpt prepare'"
        case .mixedFormats(let d):
            return "'\(d)' mixes .npy and .bin shards; keep one format per directory"
        case .shardTooSmall(let p, let t, let n):
            return "shard '\(p)' has \(t) tokens, fewer than one batch needs (\(n) = B*T*world+1); lower -B/-T"
        }
    }
}

public final class DataLoader {
    public let B: Int
    public let T: Int
    /// Every token must be below this (the model's vocabulary).
    public let vocabSize: Int
    public let rank: Int
    public let worldSize: Int
    public let shuffle: Bool
    public let seed: UInt64
    public let paths: [String]
    public private(set) var state = DataPosition()

    private var order: [Int] = []           // shard indices in this epoch's order
    private var mapped: MappedTokenShard?   // current shard, in file order
    private var permuted: [UInt16] = []     // current shard, document-permuted (when shuffling)
    private var loadedKey: (epoch: Int, shard: Int)? = nil

    /// - Parameters: directory of shards; split: .train or .val; B, T; rank and worldSize for data
    ///   parallelism; shuffle and seed as described above; vocabSize: the model's vocabulary
    ///   (a shard holding an id at or above it throws `ShardError.tokenOutOfRange` when opened).
    public init(directory: String, split: DatasetSplit, B: Int, T: Int, rank: Int = 0, worldSize: Int = 1,
                shuffle: Bool = false, seed: UInt64 = 1337, vocabSize: Int = 50257) throws {
        precondition(B >= 1 && T >= 1 && worldSize >= 1 && rank >= 0 && rank < worldSize && vocabSize >= 1)
        let paths = try TokenShard.list(directory: directory, split: split)
        guard !paths.isEmpty else { throw DataLoaderError.noShards(directory: directory, split: split.rawValue) }
        let all = try TokenShard.list(directory: directory, split: .train) + TokenShard.list(directory: directory, split: .val)
        if Set(all.map { URL(fileURLWithPath: $0).pathExtension }).count > 1 { throw DataLoaderError.mixedFormats(directory: directory) }
        let needed = B * T * worldSize + 1
        for p in paths {
            let n = try TokenShard.tokenCount(path: p)
            if n < needed { throw DataLoaderError.shardTooSmall(path: p, tokens: n, needed: needed) }
        }
        self.B = B
        self.T = T
        self.vocabSize = vocabSize
        self.rank = rank
        self.worldSize = worldSize
        self.shuffle = shuffle
        self.seed = seed
        self.paths = paths
        try restore(DataPosition(epoch: 0, shardCursor: 0, position: B * T * rank))
    }

    /// Rewinds to the first batch (used for validation before each evaluation).
    public func reset() throws {
        try restore(DataPosition(epoch: 0, shardCursor: 0, position: B * T * rank))
    }

    /// Continues from a saved position.
    public func restore(_ position: DataPosition) throws {
        state = position
        try load()
    }

    /// Fills `inputs` and `targets` (B·T each) with the next batch.
    public func next(inputs: inout [Int32], targets: inout [Int32]) throws {
        let n = B * T
        if inputs.count != n { inputs = [Int32](repeating: 0, count: n) }
        if targets.count != n { targets = [Int32](repeating: 0, count: n) }
        let p = state.position
        let count = withTokens { t in
            for i in 0..<n {
                inputs[i] = Int32(t[p + i])
                targets[i] = Int32(t[p + i + 1])
            }
            return t.count
        }
        state.position += n * worldSize
        if state.position + n * worldSize + 1 > count {
            state.shardCursor += 1
            if state.shardCursor == paths.count { state.shardCursor = 0; state.epoch += 1 }
            state.position = n * rank
            try load()
        }
    }

    /// Calls `body` with the current shard's tokens.
    private func withTokens<R>(_ body: (UnsafeBufferPointer<UInt16>) -> R) -> R {
        if let mapped { return mapped.withTokens(body) }
        return permuted.withUnsafeBufferPointer(body)
    }

    private func load() throws {
        order = shuffle ? permutation(paths.count, seed: mix(seed, UInt64(state.epoch), 0x5348_5244)) : Array(0..<paths.count)
        let shard = order[state.shardCursor]
        if let k = loadedKey, k.epoch == (shuffle ? state.epoch : 0), k.shard == shard { return }
        loadedKey = nil
        mapped = nil
        permuted = []
        let file = try MappedTokenShard(path: paths[shard])
        try file.checkTokens(vocabSize: vocabSize)
        if shuffle {
            permuted = file.withTokens { shuffleDocuments($0, seed: mix(seed, UInt64(state.epoch), UInt64(shard) &+ 1)) }
        } else {
            mapped = file
        }
        loadedKey = (shuffle ? state.epoch : 0, shard)
    }

    /// Documents start at each <|endoftext|>; text before the first one is a document too.
    private func shuffleDocuments(_ t: UnsafeBufferPointer<UInt16>, seed: UInt64) -> [UInt16] {
        var starts = [0]
        for i in 1..<t.count where t[i] == UInt16(GPT2Tokenizer.endOfText) { starts.append(i) }
        starts.append(t.count)
        let docs = starts.count - 1
        guard docs > 1 else { return Array(t) }
        var out: [UInt16] = []
        out.reserveCapacity(t.count)
        for d in permutation(docs, seed: seed) { out.append(contentsOf: t[starts[d]..<starts[d + 1]]) }
        return out
    }
}

/// Fisher-Yates permutation of 0..<n from a seed.
func permutation(_ n: Int, seed: UInt64) -> [Int] {
    var rng = SplitMix64(seed: seed)
    var p = Array(0..<n)
    if n < 2 { return p }
    for i in stride(from: n - 1, to: 0, by: -1) {
        let j = Int(rng.next() % UInt64(i + 1))
        p.swapAt(i, j)
    }
    return p
}

/// Combines seeds so (seed, epoch, shard) streams are independent.
func mix(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
    var r = SplitMix64(seed: a ^ (b &* 0x9E37_79B9_7F4A_7C15) ^ (c &* 0xC2B2_AE3D_27D4_EB4F))
    return r.next()
}
