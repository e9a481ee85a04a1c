// Packs `DatasetPreparer`'s token stream into shards exactly as fineweb.py: a shard is written as
// soon as it is full, the last one holds whatever is left, shard 0 is validation. When the whole
// stream fits in the first shard and no validation size was asked for, it is split instead (the
// last ~10% is validation, cut at a document start when one lies near), so training has data.

/// How `prepare` split an input that fits in one shard: the first `trainTokens` are the train shard,
/// the last `valTokens` the val shard.
public struct AutoSplit: Sendable, Equatable {
    public var trainTokens: Int
    public var valTokens: Int
    /// True when the val part starts at a document (an `<|endoftext|>`); false when no document
    /// starts between 75% and 95% of the stream and the cut is at the token nearest 90%.
    public var atDocumentBoundary: Bool

    /// Where the val part starts: the document start nearest to 90% of `tokens` between 75% and 95%,
    /// else token 90% (each part keeps at least one token). Requires at least 2 tokens.
    static func choose(_ tokens: [UInt16], endOfText: UInt16) -> AutoSplit {
        let n = tokens.count
        precondition(n >= 2, "splitting \(n) tokens")
        let target = n - max(1, n / 10)
        let lo = min(target, max(1, n - n / 4)), hi = max(target, min(n - 1, n - max(1, n / 20)))
        if lo <= hi {
            var d = 0
            while target - d >= lo || target + d <= hi {
                for p in [target - d, target + d] where p >= lo && p <= hi && tokens[p] == endOfText {
                    return AutoSplit(trainTokens: p, valTokens: n - p, atDocumentBoundary: true)
                }
                d += 1
            }
        }
        return AutoSplit(trainTokens: target, valTokens: n - target, atDocumentBoundary: false)
    }
}

struct ShardSink {
    let directory: String
    let name: String
    let format: ShardFormat
    let shardTokens: Int
    let valTokens: Int?
    private(set) var index: Int
    private var buffer: [UInt16] = []
    private(set) var written: [String] = []
    private(set) var valTokensWritten = 0

    init(directory: String, name: String, format: ShardFormat, shardTokens: Int, valTokens: Int?) {
        self.directory = directory
        self.name = name
        self.format = format
        self.shardTokens = shardTokens
        self.valTokens = valTokens
        index = valTokens == 0 ? 1 : 0  // --val-tokens 0: no validation shard
        buffer.reserveCapacity(capacity)
    }

    /// Tokens the current shard holds when full.
    var capacity: Int { index == 0 ? (valTokens ?? shardTokens) : shardTokens }

    /// Appends ids, writing every shard that fills up; `wrote` gets each shard's path.
    mutating func append(_ ids: [Int32], wrote: (String) -> Void) throws {
        var rest = ids[...]
        while !rest.isEmpty {
            let take = min(capacity - buffer.count, rest.count)
            buffer.append(contentsOf: rest.prefix(take).lazy.map(toUInt16))
            rest = rest.dropFirst(take)
            if buffer.count == capacity { wrote(try flush()) }
        }
    }

    /// Writes the partial last shard, if any. When nothing has been written yet and no validation size
    /// was given, splits the stream into a val and a train shard instead and returns the split.
    mutating func finish(wrote: (String) -> Void) throws -> AutoSplit? {
        guard !buffer.isEmpty else { return nil }
        guard index == 0, valTokens == nil, buffer.count >= 2 else {
            wrote(try flush())
            return nil
        }
        let split = AutoSplit.choose(buffer, endOfText: UInt16(GPT2Tokenizer.endOfText))
        // The tail first (val, shard 0), then the head (train, shard 1), both straight from the buffer.
        wrote(try write(split.trainTokens..<buffer.count))
        wrote(try write(0..<split.trainTokens))
        buffer = []
        return split
    }

    private mutating func flush() throws -> String {
        let path = try write(0..<buffer.count)
        buffer.removeAll(keepingCapacity: true)
        if buffer.capacity < capacity { buffer.reserveCapacity(capacity) }
        return path
    }

    /// Writes `buffer[range]` as the next shard (val when it is shard 0).
    private mutating func write(_ range: Range<Int>) throws -> String {
        let split: DatasetSplit = index == 0 ? .val : .train
        let path = joinPath(directory, TokenShard.fileName(name: name, split: split, index: index, format: format))
        try buffer.withUnsafeBufferPointer { try TokenShard.write(UnsafeBufferPointer(rebasing: $0[range]), to: path, format: format) }
        if index == 0 { valTokensWritten = range.count }
        written.append(path)
        index += 1
        return path
    }
}
