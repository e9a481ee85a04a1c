// Dataset preparation, as build-nanogpt's fineweb.py (and llm.c's dev/data scripts) do it: every
// document is tokenized with GPT-2 and prefixed with <|endoftext|> (50256), the token stream is packed
// into shards of `shardTokens` uint16 tokens, documents spill across shard boundaries, and shard 0 is
// validation: NAME_val_000000, NAME_train_000001, NAME_train_000002, ...
// Batches of document pieces are encoded on all cores and written in input order, so the output is
// byte-identical for any thread count. https://github.com/karpathy/build-nanogpt/blob/master/fineweb.py
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import GPT2Resources

/// A progress report from `DatasetPreparer`, sent after each encoded batch and each shard written.
public struct PrepareProgress: Sendable {
    /// Input bytes read so far.
    public var bytesRead: Int
    /// Documents read so far.
    public var documents: Int
    /// Tokens produced so far (including one `<|endoftext|>` per document).
    public var tokens: Int
    /// Shards written so far.
    public var shardsWritten: Int
    /// The shard just written, when this report is about one.
    public var shardWritten: String?
    /// Seconds since the start.
    public var elapsed: Double

    /// Input throughput in MB/s (10^6 bytes).
    public var megabytesPerSecond: Double { elapsed > 0 ? Double(bytesRead) / 1e6 / elapsed : 0 }
    /// Token throughput.
    public var tokensPerSecond: Double { elapsed > 0 ? Double(tokens) / elapsed : 0 }
}

/// What a preparation run produced.
public struct PrepareSummary: Sendable {
    /// Paths of the shards written, in order (val first when there is one).
    public var shards: [String]
    /// Documents read.
    public var documents: Int
    /// Tokens written, all shards.
    public var tokens: Int
    /// Tokens in the validation shard (0 if none).
    public var valTokens: Int
    /// Input bytes read.
    public var bytesRead: Int
    /// Seconds taken.
    public var elapsed: Double
}

/// Errors of `DatasetPreparer` itself (inputs fail with `DocumentError`, shard writes with `ShardError`).
public enum PrepareError: LocalizedError, Equatable {
    /// The output directory cannot be created or written.
    case outputNotWritable(path: String, reason: String)
    /// Shards with this name already exist and `overwrite` is false.
    case existingShards(directory: String, first: String, count: Int)
    /// An option is out of range.
    case invalidOption(String)

    public var errorDescription: String? {
        switch self {
        case let .outputNotWritable(path, reason):
            return "cannot write to output directory '\(path)': \(reason)"
        case let .existingShards(directory, first, count):
            return "'\(directory)' already holds \(count) shard(s) of this dataset (e.g. '\(first)'); "
                + "pass --overwrite to replace them, or choose another --output or --name"
        case let .invalidOption(message):
            return message
        }
    }
}

/// Tokenizes text corpora into token shards (build-nanogpt `.npy` or llm.c `.bin`).
public enum DatasetPreparer {
    /// Tokenizes `inputs` into shards in `outputDirectory`, as fineweb.py does.
    ///
    /// Each document becomes `[50256] + encode(text)` (fineweb.py's `encode_ordinary`: special-token
    /// text is encoded as plain text). The token stream is cut into shards of `shardTokens`, so
    /// documents spill from one shard into the next; the last shard holds the remainder.
    /// - Without `valTokens` (fineweb.py): the first full shard is validation
    ///   (`NAME_val_000000`), every later one training (`NAME_train_000001`, ...). Input smaller than
    ///   one shard therefore yields only a validation shard.
    /// - With `valTokens: N`: the validation shard holds the first N tokens of the stream only; the
    ///   training shards (`shardTokens` each, from index 000001) start with token N. `0` writes no
    ///   validation shard.
    ///
    /// Shards are written to `.FILE.tmp` in the output directory, fsync'd and renamed into place, so
    /// a crash or error never leaves a partial shard under a final name (shards completed before an
    /// error stay). The output is byte-identical for any `threads`.
    /// - Parameters:
    ///   - inputs: text files, JSONL files, directories of them, `-` for standard input (see `DocumentReader`).
    ///   - outputDirectory: created if missing.
    ///   - name: the file-name prefix (`edufineweb` in fineweb.py).
    ///   - shardTokens: tokens per shard (fineweb.py: 100M).
    ///   - valTokens: size of the validation shard, or nil for fineweb.py's behaviour.
    ///   - format: `.npy` (build-nanogpt) or `.bin` (llm.c).
    ///   - threads: encoding threads (default: all cores).
    ///   - stdinFormat: how `-` is parsed (text unless JSONL is asked for).
    ///   - overwrite: replace existing shards of `name` in the directory (and delete stale ones this run
    ///     did not rewrite, once it succeeds); when false, existing shards are an error.
    ///   - pieceBytes: target size of the text pieces encoded in parallel (tests use small values).
    ///   - progress: called on this thread after each batch and each shard.
    /// - Returns: the shards written and totals.
    @discardableResult
    public static func prepare(
        inputs: [String],
        outputDirectory: String,
        name: String = "data",
        shardTokens: Int = 100_000_000,
        valTokens: Int? = nil,
        format: ShardFormat = .npy,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount,
        stdinFormat: InputFormat = .text,
        overwrite: Bool = false,
        pieceBytes: Int = 1 << 20,
        progress: (PrepareProgress) -> Void = { _ in }
    ) throws -> PrepareSummary {
        guard shardTokens > 0 else { throw PrepareError.invalidOption("shard tokens must be > 0, got \(shardTokens)") }
        if format == .bin, shardTokens > Int(Int32.max) {
            throw PrepareError.invalidOption("llm.c .bin shards hold at most \(Int32.max) tokens, got --shard-tokens \(shardTokens)")
        }
        if let valTokens {
            guard valTokens >= 0 else { throw PrepareError.invalidOption("val tokens must be >= 0, got \(valTokens)") }
            if format == .bin, valTokens > Int(Int32.max) {
                throw PrepareError.invalidOption("llm.c .bin shards hold at most \(Int32.max) tokens, got --val-tokens \(valTokens)")
            }
        }
        guard threads > 0 else { throw PrepareError.invalidOption("threads must be > 0, got \(threads)") }
        guard pieceBytes >= 16 else { throw PrepareError.invalidOption("piece bytes must be >= 16, got \(pieceBytes)") }
        try checkName(name)

        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

        let reader = try DocumentReader(inputs: inputs, stdinFormat: stdinFormat, pieceBytes: pieceBytes)
        try prepareOutputDirectory(outputDirectory)
        let existing = try existingShards(directory: outputDirectory, name: name)
        if !existing.isEmpty, !overwrite {
            throw PrepareError.existingShards(directory: outputDirectory, first: existing[0], count: existing.count)
        }

        var sink = ShardSink(directory: outputDirectory, name: name, format: format,
                             shardTokens: shardTokens, valTokens: valTokens)
        var tokens = 0
        var shardsWritten = 0  // not sink.written: the callbacks below run while sink is being mutated
        func report(shard: String?) {
            if shard != nil { shardsWritten += 1 }
            progress(PrepareProgress(bytesRead: reader.bytesRead, documents: reader.documents, tokens: tokens,
                                     shardsWritten: shardsWritten, shardWritten: shard, elapsed: elapsed()))
        }
        // A batch keeps every thread busy for a while: ~4 pieces per thread, bounded in count for tiny documents.
        let batchBytes = 4 * threads * pieceBytes
        let batchPieces = 4096 * threads
        var done = false
        while !done {
            var batch: [RawItem] = []
            var bytes = 0
            var readError: DocumentError?
            while bytes < batchBytes, batch.count < batchPieces {
                let item: RawItem?
                do throws(DocumentError) {
                    item = try reader.nextItem()
                } catch {
                    // Write what came before the error first, so the shards left behind do not depend on batching.
                    readError = error
                    break
                }
                guard let item else { done = true; break }
                switch item {
                case let .piece(p): bytes += p.bytes.count
                case let .jsonLine(l): bytes += l.bytes.count
                }
                batch.append(item)
            }
            // In input order: the first bad JSONL line in the input is the one reported, for any thread count.
            for result in encode(batch, threads: threads) {
                let ids = try result.get()
                tokens += ids.count
                try sink.append(ids) { report(shard: $0) }
            }
            if let readError { throw readError }
            report(shard: nil)
        }
        try sink.finish { report(shard: $0) }

        // Stale shards of an earlier, longer run would be read as part of this dataset.
        let written = Set(sink.written.map { splitPath($0).base })
        for stale in existing where !written.contains(stale) {
            unlink(joinPath(outputDirectory, stale))
        }
        return PrepareSummary(shards: sink.written, documents: reader.documents, tokens: tokens,
                              valTokens: sink.valTokensWritten, bytesRead: reader.bytesRead, elapsed: elapsed())
    }

    /// Writes the embedded Shakespeare corpus as `shakespeare_val_000000` and `shakespeare_train_000001`.
    ///
    /// The split, ~90% train / ~10% val: the 1,115,339 bytes are cut right after the first `\n` at or
    /// after byte 90% (`count * 9 / 10`). The first part (~90%) is one document in the train shard,
    /// the rest (~10%) one document in the val shard; each starts with `<|endoftext|>`. Both files are
    /// replaced if present.
    /// - Parameters:
    ///   - outputDirectory: created if missing.
    ///   - format: `.npy` or `.bin`.
    ///   - threads: encoding threads.
    ///   - progress: called after each shard.
    /// - Returns: the two shards (val first) and totals.
    @discardableResult
    public static func prepareShakespeare(
        outputDirectory: String,
        format: ShardFormat = .npy,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount,
        progress: (PrepareProgress) -> Void = { _ in }
    ) throws -> PrepareSummary {
        guard threads > 0 else { throw PrepareError.invalidOption("threads must be > 0, got \(threads)") }
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        try prepareOutputDirectory(outputDirectory)

        let (train, val) = shakespeareSplit()
        var shards: [String] = []
        var tokens = 0
        var valCount = 0
        // (split, index, text): val is written first, as shard 0.
        for (split, index, text) in [(DatasetSplit.val, 0, val), (.train, 1, train)] {
            let pieces = PieceSplitter.split(text, pieceBytes: 64 << 10).enumerated().map {
                RawItem.piece(DocumentPiece(bytes: $0.element, startsDocument: $0.offset == 0))
            }
            var ids: [UInt16] = []
            for part in encode(pieces, threads: threads) { ids.append(contentsOf: try part.get().map(toUInt16)) }
            let path = joinPath(outputDirectory, TokenShard.fileName(name: "shakespeare", split: split, index: index, format: format))
            try TokenShard.write(ids, to: path, format: format)
            shards.append(path)
            tokens += ids.count
            if split == .val { valCount = ids.count }
            progress(PrepareProgress(bytesRead: split == .val ? val.count : val.count + train.count, documents: shards.count,
                                     tokens: tokens, shardsWritten: shards.count, shardWritten: path, elapsed: elapsed()))
        }
        return PrepareSummary(shards: shards, documents: 2, tokens: tokens, valTokens: valCount,
                              bytesRead: train.count + val.count, elapsed: elapsed())
    }

    /// The embedded corpus split as `prepareShakespeare` does: (train ≈ first 90%, val ≈ last 10%).
    public static func shakespeareSplit() -> (train: [UInt8], val: [UInt8]) {
        var count = 0
        let base = gpt2_resource_shakespeare(&count)!
        let all = UnsafeBufferPointer(start: base, count: count)
        var cut = count * 9 / 10
        while cut < count, all[cut] != 0x0A { cut += 1 }
        cut = min(cut + 1, count)  // keep the '\n' with the train part
        return (Array(all[..<cut]), Array(all[cut...]))
    }

    // MARK: - Parallel encoding

    /// Encodes items on `threads` threads: result `i` is item `i`'s ids, with `<|endoftext|>` first for
    /// the first piece of a document; JSONL lines are validated and parsed here too (JSON decoding on
    /// one thread would cap the pipeline at ~150 MB/s). The result does not depend on `threads`.
    static func encode(_ items: [RawItem], threads: Int) -> [Result<[Int32], DocumentError>] {
        let tokenizer = GPT2Tokenizer.gpt2
        @Sendable func encodeOne(_ item: RawItem, _ decoder: JSONDecoder) -> Result<[Int32], DocumentError> {
            let text: [UInt8]
            let startsDocument: Bool
            switch item {
            case let .piece(piece):
                (text, startsDocument) = (piece.bytes, piece.startsDocument)
            case let .jsonLine(line):
                do throws(DocumentError) {
                    (text, startsDocument) = (try line.text(decoder: decoder), true)
                } catch {
                    return .failure(error)
                }
            }
            var ids: [Int32] = []
            ids.reserveCapacity(text.count / 3 + 1)
            if startsDocument { ids.append(GPT2Tokenizer.endOfText) }
            text.withUnsafeBufferPointer { tokenizer.encode(utf8: $0, allowSpecial: false, into: &ids) }
            return .success(ids)
        }
        var results = [Result<[Int32], DocumentError>](repeating: .success([]), count: items.count)
        if threads == 1 || items.count <= 1 {
            let decoder = JSONDecoder()
            for (i, item) in items.enumerated() { results[i] = encodeOne(item, decoder) }
            return results
        }
        // Workers take the next item from a shared counter (items differ in size), write their slot.
        let next = DataWorkCounter()
        results.withUnsafeMutableBufferPointer { out in
            let slots = DataSlots(out)
            DispatchQueue.concurrentPerform(iterations: min(threads, items.count)) { _ in
                let decoder = JSONDecoder()  // one per worker
                while let i = next.take(below: items.count) {
                    slots.value[i] = encodeOne(items[i], decoder)
                }
            }
        }
        return results
    }

    // MARK: - Output directory

    static func prepareOutputDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw PrepareError.outputNotWritable(path: path, reason: "it is not a directory") }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                let reason = (error as NSError).localizedFailureReason ?? "cannot create it"
                throw PrepareError.outputNotWritable(path: path, reason: reason)
            }
        }
        // Probe with a real file: access(W_OK) is wrong for root on read-only mounts, among others.
        let probe = joinPath(path, ".gpt-prepare-\(getpid()).probe.tmp")
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw PrepareError.outputNotWritable(path: path, reason: String(cString: strerror(errno)))
        }
        close(fd)
        unlink(probe)
    }

    /// File names (not paths) of `NAME_{val,train}_NNNNNN.{npy,bin}` in `directory`, sorted.
    static func existingShards(directory: String, name: String) throws -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.filter { entry in
            for split in DatasetSplit.allCases {
                let prefix = "\(name)_\(split.rawValue)_"
                guard entry.hasPrefix(prefix) else { continue }
                let rest = entry.dropFirst(prefix.count)
                guard rest.hasSuffix(".npy") || rest.hasSuffix(".bin") else { continue }
                let digits = rest.dropLast(4)
                if digits.count >= 6, digits.allSatisfy({ $0.isASCII && $0.isNumber }) { return true }
            }
            return false
        }.sorted()
    }

    static func checkName(_ name: String) throws {
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix("."), !name.contains("\0") else {
            throw PrepareError.invalidOption("dataset name '\(name)' must be a non-empty file-name prefix without '/' or a leading '.'")
        }
    }
}

// MARK: - Shard packing

/// Packs the token stream into shards exactly as fineweb.py: a shard is written as soon as it is full,
/// the last one holds whatever is left.
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

    /// Writes the partial last shard, if any.
    mutating func finish(wrote: (String) -> Void) throws {
        if !buffer.isEmpty { wrote(try flush()) }
    }

    private mutating func flush() throws -> String {
        let split: DatasetSplit = index == 0 ? .val : .train
        let path = joinPath(directory, TokenShard.fileName(name: name, split: split, index: index, format: format))
        try TokenShard.write(buffer, to: path, format: format)
        if index == 0 { valTokensWritten = buffer.count }
        written.append(path)
        index += 1
        buffer.removeAll(keepingCapacity: true)
        if buffer.capacity < capacity { buffer.reserveCapacity(capacity) }
        return path
    }
}

// MARK: - Helpers

@inline(__always)
func toUInt16(_ id: Int32) -> UInt16 {
    precondition(id >= 0 && id <= 65535, "token id \(id) does not fit in uint16")
    return UInt16(id)
}

func joinPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// A shared "next index" for workers.
final class DataWorkCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}

/// Hands a pointer to concurrent workers that write disjoint slots.
struct DataSlots<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
