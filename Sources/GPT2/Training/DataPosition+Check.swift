// Checking a saved data position against the shards before a loader moves there: a checkpoint's
// position comes from a file and may be damaged or belong to other data.
import Foundation

extension DataLoader {
    /// Throws `TrainingError.badState` unless `p`, rank 0's position (as checkpoints store it),
    /// is one every rank of this loader can read from.
    func check(_ p: DataPosition) throws {
        guard p.epoch >= 0 else { throw TrainingError.badState(what: "data epoch \(p.epoch) is negative") }
        guard p.shardCursor >= 0 && p.shardCursor < paths.count else {
            throw TrainingError.badState(what: "data shard index \(p.shardCursor) is outside the \(paths.count) train shard(s) of this data")
        }
        let order = shuffle ? permutation(paths.count, seed: mix(seed, UInt64(p.epoch), 0x5348_5244)) : Array(0..<paths.count)
        let path = paths[order[p.shardCursor]]
        let tokens = try TokenShard.tokenCount(path: path)
        let stride = B * T
        // Rank r reads stride + 1 tokens at position + stride·r.
        guard p.position >= 0, p.position % stride == 0, p.position <= tokens - stride * worldSize - 1 else {
            throw TrainingError.badState(what: "data position \(p.position) does not fit shard '\(path)' (\(tokens) tokens, batches of \(stride))")
        }
    }
}
