// Dataset preparation, as build-nanogpt's fineweb.py (and llm.c's dev/data scripts) do it: every
// document is tokenized with GPT-2 and prefixed with <|endoftext|> (50256), the token stream is packed
// into shards of `shardTokens` uint16 tokens, documents spill across shard boundaries, and shard 0 is
// validation: NAME_val_000000, NAME_train_000001, NAME_train_000002, ... (input smaller than one shard
// is split ~90/10 instead, see `AutoSplit`). Inputs may arrive while it runs (`PrepareInputQueue`).
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
    /// Null Parquet rows skipped.
    public var nullRows: Int
    /// Tokens written, all shards.
    public var tokens: Int
    /// Tokens in the validation shard (0 if none).
    public var valTokens: Int
    /// Set when the input fit in one shard and was split into a val and a train shard.
    public var autoSplit: AutoSplit?
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
    /// The inputs hold no text (no documents, or only empty ones).
    case emptyInput(inputs: [String], nullRows: Int)

    public var errorDescription: String? {
        switch self {
        case let .outputNotWritable(path, reason):
            return "cannot write to output directory '\(path)': \(reason)"
        case let .existingShards(directory, first, count):
            return "'\(directory)' already holds \(count) shard(s) of this dataset (e.g. '\(first)'); "
                + "pass --overwrite to replace them, or choose another --output or --name"
        case let .invalidOption(message):
            return message
        case let .emptyInput(inputs, nullRows):
            let names = inputs.prefix(5).map { "'\($0)'" }.joined(separator: ", ") + (inputs.count > 5 ? " and \(inputs.count - 5) more" : "")
            let nulls = nullRows > 0 ? " (\(nullRows) null rows skipped)" : ""
            return "no text to prepare in \(inputs.isEmpty ? "the input" : names)\(nulls): every document is empty; check the input (and --column)"
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
    ///   (`NAME_val_000000`), every later one training (`NAME_train_000001`, ...). Input that fits in
    ///   one shard is split instead (see `AutoSplit`): its last ~10% becomes the val shard and the
    ///   rest `NAME_train_000001`, and the summary's `autoSplit` says where the cut fell.
    /// - With `valTokens: N`: the validation shard holds the first N tokens of the stream only; the
    ///   training shards (`shardTokens` each, from index 000001) start with token N. `0` writes no
    ///   validation shard.
    ///
    /// Shards are written to `.FILE.tmp` in the output directory, fsync'd and renamed into place, so
    /// a crash or error never leaves a partial shard under a final name (shards completed before an
    /// error stay). The output is byte-identical for any `threads`. Input without any text is an error.
    /// - Parameters:
    ///   - inputs: text, JSONL and Parquet files, directories of them, `-` for standard input (see
    ///     `DocumentReader`). All are checked to exist before anything is written.
    ///   - outputDirectory: created if missing.
    ///   - name: the file-name prefix (`edufineweb` in fineweb.py).
    ///   - shardTokens: tokens per shard (fineweb.py: 100M), at most `maxShardTokens()`.
    ///   - valTokens: size of the validation shard, or nil for fineweb.py's behaviour.
    ///   - format: `.npy` (build-nanogpt) or `.bin` (llm.c).
    ///   - threads: encoding (and Parquet decoding) threads (default: all cores).
    ///   - stdinFormat: how `-` is parsed (text unless JSONL is asked for).
    ///   - column: the JSONL field / Parquet column holding the text.
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
        column: String = "text",
        overwrite: Bool = false,
        pieceBytes: Int = 1 << 20,
        progress: (PrepareProgress) -> Void = { _ in }
    ) throws -> PrepareSummary {
        try checkOptions(shardTokens: shardTokens, valTokens: valTokens, threads: threads, pieceBytes: pieceBytes, name: name)
        _ = try DocumentReader.resolve(inputs: inputs, stdinFormat: stdinFormat)  // every input exists, before any output
        return try prepare(queue: FixedInputQueue(inputs), outputDirectory: outputDirectory, name: name, shardTokens: shardTokens,
                           valTokens: valTokens, format: format, threads: threads, stdinFormat: stdinFormat, column: column,
                           overwrite: overwrite, pieceBytes: pieceBytes, progress: progress)
    }

    /// Tokenizes the files `queue` hands out, in order, as `prepare(inputs:)` does with the same files
    /// (the output is byte-identical). `queue.next()` is called when the files handed out so far have
    /// been read, after the text read from them has been tokenized; `queue.done(path)` once a file
    /// (or all files of a directory) has been read, so a streaming caller can delete it. Errors thrown
    /// by `queue.next()` stop the run and are rethrown as they are.
    /// - Parameters: see `prepare(inputs:)`; `queue` replaces `inputs`.
    /// - Returns: the shards written and totals.
    @discardableResult
    public static func prepare(
        queue: any PrepareInputQueue,
        outputDirectory: String,
        name: String = "data",
        shardTokens: Int = 100_000_000,
        valTokens: Int? = nil,
        format: ShardFormat = .npy,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount,
        stdinFormat: InputFormat = .text,
        column: String = "text",
        overwrite: Bool = false,
        pieceBytes: Int = 1 << 20,
        progress: (PrepareProgress) -> Void = { _ in }
    ) throws -> PrepareSummary {
        try checkOptions(shardTokens: shardTokens, valTokens: valTokens, threads: threads, pieceBytes: pieceBytes, name: name)

        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

        let reader = DocumentReader(queue: queue, stdinFormat: stdinFormat, pieceBytes: pieceBytes, column: column, threads: threads)
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
            var readError: Error?
            while bytes < batchBytes, batch.count < batchPieces {
                let step: DocumentReader.Step
                do {
                    // Tokenize what we hold before waiting for the next download.
                    step = try reader.step(mayWait: batch.isEmpty)
                } catch {
                    // Write what came before the error first, so the shards left behind do not depend on batching.
                    readError = error
                    break
                }
                if case .end = step { done = true }
                guard case let .item(item) = step else { break }  // (waiting for the queue: encode what we hold)
                switch item {
                case let .piece(p): bytes += p.bytes.count
                case let .jsonLine(l): bytes += l.bytes.count
                case let .span(s): bytes += s.count
                }
                batch.append(item)
            }
            // In input order: the first bad JSONL line in the input is the one reported, for any thread count.
            for result in encode(batch, threads: threads, column: column) {
                let ids = try result.get()
                tokens += ids.count
                try sink.append(ids) { report(shard: $0) }
            }
            if let readError { throw readError }
            report(shard: nil)
        }
        // Every document adds one <|endoftext|>; any text adds at least one more token.
        if tokens == reader.documents {
            throw PrepareError.emptyInput(inputs: reader.sources.map(\.displayName), nullRows: reader.nullRows)
        }
        let split = try sink.finish { report(shard: $0) }

        // Stale shards of an earlier, longer run would be read as part of this dataset.
        let written = Set(sink.written.map { splitPath($0).base })
        for stale in existing where !written.contains(stale) {
            unlink(joinPath(outputDirectory, stale))
        }
        return PrepareSummary(shards: sink.written, documents: reader.documents, nullRows: reader.nullRows, tokens: tokens,
                              valTokens: sink.valTokensWritten, autoSplit: split, bytesRead: reader.bytesRead, elapsed: elapsed())
    }

    /// The largest `shardTokens` / `valTokens` accepted: a shard is built in memory as uint16 tokens, so
    /// at most an eighth of physical memory in tokens (a quarter in bytes), and never more than
    /// 2^31 - 1 (the token count field of llm.c's .bin header).
    public static func maxShardTokens() -> Int {
        min(Int(Int32.max), Int(clamping: ProcessInfo.processInfo.physicalMemory / 8))
    }

    static func checkOptions(shardTokens: Int, valTokens: Int?, threads: Int, pieceBytes: Int, name: String) throws {
        let limit = maxShardTokens()
        func tooLarge(_ option: String, _ value: Int) -> PrepareError {
            let memory = Double(ProcessInfo.processInfo.physicalMemory) / 1e9
            return .invalidOption("\(option) \(value) is too large: a shard is built in memory as uint16 tokens (2 bytes each), "
                + "so at most \(limit) tokens here (2^31 - 1, and no more than a quarter of this machine's "
                + String(format: "%.1f", memory) + " GB); fineweb.py uses 100000000")
        }
        guard shardTokens > 0 else { throw PrepareError.invalidOption("shard tokens must be > 0, got \(shardTokens)") }
        guard shardTokens <= limit else { throw tooLarge("--shard-tokens", shardTokens) }
        if let valTokens {
            guard valTokens >= 0 else { throw PrepareError.invalidOption("val tokens must be >= 0, got \(valTokens)") }
            guard valTokens <= limit else { throw tooLarge("--val-tokens", valTokens) }
        }
        guard threads > 0 else { throw PrepareError.invalidOption("threads must be > 0, got \(threads)") }
        guard pieceBytes >= 16 else { throw PrepareError.invalidOption("piece bytes must be >= 16, got \(pieceBytes)") }
        try checkName(name)
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
        return PrepareSummary(shards: shards, documents: 2, nullRows: 0, tokens: tokens, valTokens: valCount,
                              autoSplit: nil, bytesRead: train.count + val.count, elapsed: elapsed())
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
    static func encode(_ items: [RawItem], threads: Int, column: String = "text") -> [Result<[Int32], DocumentError>] {
        guard !items.isEmpty else { return [] }  // (an error on the first item needs no tokenizer)
        let tokenizer = GPT2Tokenizer.gpt2
        @Sendable func encodeOne(_ item: RawItem, _ decoder: JSONDecoder) -> Result<[Int32], DocumentError> {
            let text: [UInt8]
            let startsDocument: Bool
            switch item {
            case let .piece(piece):
                (text, startsDocument) = (piece.bytes, piece.startsDocument)
            case let .jsonLine(line):
                do throws(DocumentError) {
                    (text, startsDocument) = (try line.text(field: column, decoder: decoder), true)
                } catch {
                    return .failure(error)
                }
            case let .span(span):
                // Parquet values are validated here, on the worker threads, and encoded in place.
                if let error = span.utf8Error() { return .failure(error) }
                var ids: [Int32] = []
                ids.reserveCapacity(span.count / 3 + 1)
                if span.startsDocument { ids.append(GPT2Tokenizer.endOfText) }
                span.withBytes { tokenizer.encode(utf8: $0, allowSpecial: false, into: &ids) }
                return .success(ids)
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
