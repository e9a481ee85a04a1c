// DatasetPreparer's inputs and limits: a PrepareInputQueue that hands files out over time gives the
// bytes prepare(inputs:) gives, with done() once per file in order; FIFOs (<(zstdcat ...)); the
// automatic val split of input smaller than one shard; empty input; bounds on shard sizes.
import Foundation
import XCTest
@testable import GPT2

/// A queue that hands out paths after a delay, logs every call, and deletes each file in done()
/// as a streaming downloader does.
private final class SlowQueue: PrepareInputQueue, @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [String]
    private let delay: TimeInterval
    private let deleteWhenDone: Bool
    private(set) var log: [String] = []
    var failAfter: Int?
    /// Called at each next(); its results are kept in `observed`.
    var observe: (() -> Int)?
    private(set) var observed: [Int] = []

    struct Failure: Error, Equatable { var message: String }

    init(_ paths: [String], delay: TimeInterval, deleteWhenDone: Bool) {
        pending = paths
        self.delay = delay
        self.deleteWhenDone = deleteWhenDone
    }

    func next() throws -> String? {
        Thread.sleep(forTimeInterval: delay)
        lock.lock()
        defer { lock.unlock() }
        if let observe { observed.append(observe()) }
        if let n = failAfter, log.filter({ $0.hasPrefix("next ") }).count == n { throw Failure(message: "download failed") }
        let path = pending.isEmpty ? nil : pending.removeFirst()
        log.append("next " + (path ?? "nil"))
        return path
    }

    func done(_ path: String) {
        lock.lock()
        log.append("done " + path)
        lock.unlock()
        if deleteWhenDone { try? FileManager.default.removeItem(atPath: path) }
    }
}

final class DataPrepareInputTests: XCTestCase {
    private let eot = UInt16(GPT2Tokenizer.endOfText)

    /// Text, JSONL, the committed Parquet fixtures and a directory, in a fresh folder.
    private func makeInputs(_ dir: String) throws -> [String] {
        try DataTestSupport.write("A text file with some words in it.\n" + DataDocumentTests.trickyText, to: dir + "/a.txt")
        try DataTestSupport.write((0..<30).map { "{\"text\": \"line \($0) of the JSONL file\"}" }.joined(separator: "\n"), to: dir + "/b.jsonl")
        var inputs = [dir + "/a.txt", dir + "/b.jsonl"]
        for name in ["snappy_dict_v1_nulls.parquet", "gzip_plain_v2_required.parquet", "zstd_dict_v2_nulls_around.parquet"] {
            try FileManager.default.copyItem(atPath: ParquetTestSupport.committed + "/" + name, toPath: dir + "/" + name)
            inputs.append(dir + "/" + name)
        }
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        try DataTestSupport.write("first file of a directory", to: dir + "/sub/1.txt")
        try FileManager.default.copyItem(atPath: ParquetTestSupport.committed + "/none_fallback_v1.parquet", toPath: dir + "/sub/2.parquet")
        inputs.append(dir + "/sub")
        return inputs
    }

    func testQueueMatchesInputs() throws {
        let src = try DataTestSupport.makeDirectory(self)
        let inputs = try makeInputs(src)
        let reference = try DataTestSupport.makeDirectory(self)
        let expected = try DatasetPreparer.prepare(inputs: inputs, outputDirectory: reference, name: "ds", shardTokens: 300,
                                                   threads: 2, pieceBytes: 64)
        XCTAssertGreaterThan(expected.shards.count, 3)
        XCTAssertGreaterThan(expected.nullRows, 0)

        for threads in [1, 3] {
            // A copy per run: the queue deletes each file once it has been read.
            let copy = try DataTestSupport.makeDirectory(self) + "/in"
            try FileManager.default.copyItem(atPath: src, toPath: copy)
            let paths = inputs.map { copy + String($0.dropFirst(src.count)) }
            let queue = SlowQueue(paths, delay: 0.02, deleteWhenDone: true)
            let out = try DataTestSupport.makeDirectory(self)
            let summary = try DatasetPreparer.prepare(queue: queue, outputDirectory: out, name: "ds", shardTokens: 300,
                                                      threads: threads, pieceBytes: 64)
            XCTAssertEqual(summary.shards.map { splitPath($0).base }, expected.shards.map { splitPath($0).base })
            for (a, b) in zip(summary.shards, expected.shards) {
                XCTAssertEqual(try DataTestSupport.bytes(a), try DataTestSupport.bytes(b), "threads \(threads): \(a)")
            }
            XCTAssertEqual(summary.documents, expected.documents)
            XCTAssertEqual(summary.nullRows, expected.nullRows)
            // Each path is asked for only after the previous one is done, and done exactly once.
            XCTAssertEqual(queue.log, paths.flatMap { ["next " + $0, "done " + $0] } + ["next nil"])
            XCTAssertFalse(paths.contains { FileManager.default.fileExists(atPath: $0) })
        }
    }

    /// What was read before the queue is asked for the next file is tokenized and written first.
    func testQueueTokenizesBeforeWaiting() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let text = DataDocumentTests.trickyText
        let tokens = 1 + GPT2Tokenizer.gpt2.encode(text).count
        for k in 0..<3 { try DataTestSupport.write(text, to: dir + "/\(k).txt") }
        let out = try DataTestSupport.makeDirectory(self)
        let queue = SlowQueue((0..<3).map { dir + "/\($0).txt" }, delay: 0, deleteWhenDone: false)
        queue.observe = { ((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []).filter { $0.hasSuffix(".npy") }.count }
        try DatasetPreparer.prepare(queue: queue, outputDirectory: out, name: "ds", shardTokens: 100, valTokens: 0, threads: 2)
        XCTAssertEqual(queue.observed, [0, tokens / 100, 2 * tokens / 100, 3 * tokens / 100])
    }

    func testQueueErrorsPassThrough() throws {
        let src = try DataTestSupport.makeDirectory(self)
        let inputs = try makeInputs(src)
        let queue = SlowQueue(inputs, delay: 0, deleteWhenDone: false)
        queue.failAfter = 2
        let out = try DataTestSupport.makeDirectory(self)
        XCTAssertThrowsError(try DatasetPreparer.prepare(queue: queue, outputDirectory: out, name: "ds", shardTokens: 50, threads: 2)) { error in
            XCTAssertEqual(error as? SlowQueue.Failure, SlowQueue.Failure(message: "download failed"))
        }
        XCTAssertEqual(queue.log, ["next " + inputs[0], "done " + inputs[0], "next " + inputs[1], "done " + inputs[1]])
        // Complete shards of the first two files stay; nothing partial.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix(".") }, [])
        // A missing file from the queue names it.
        let missing = src + "/nope.txt"
        DataTestSupport.assertThrows(DocumentError.cannotOpen(path: missing, reason: "No such file or directory"), naming: missing) {
            try DatasetPreparer.prepare(queue: SlowQueue([missing], delay: 0, deleteWhenDone: false),
                                        outputDirectory: try DataTestSupport.makeDirectory(self))
        }
    }

    /// `gpt prepare <(zstdcat f.jsonl.zst)`: a FIFO without a telling name is read like stdin.
    func testFIFOInputs() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let docs = (0..<50).map { "document \($0) read from a pipe, with some words" }
        let jsonl = docs.map { "{\"text\": \"\($0)\"}\n" }.joined()
        func writeToFIFO(_ path: String, _ bytes: [UInt8]) -> Thread {
            let t = Thread {
                let fd = open(path, O_WRONLY)
                guard fd >= 0 else { return }
                _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
            t.start()
            return t
        }
        var expected: [UInt16] = []
        for d in docs { expected += [eot] + GPT2Tokenizer.gpt2.encode(d).map { UInt16($0) } }

        for (name, stdinFormat) in [("fifo", InputFormat.jsonl), ("data.jsonl", .text)] {
            let fifo = dir + "/" + name
            XCTAssertEqual(mkfifo(fifo, 0o600), 0)
            _ = writeToFIFO(fifo, Array(jsonl.utf8))
            let out = try DataTestSupport.makeDirectory(self)
            let summary = try DatasetPreparer.prepare(inputs: [fifo], outputDirectory: out, name: "ds", valTokens: 0,
                                                      threads: 2, stdinFormat: stdinFormat)
            XCTAssertEqual(try summary.shards.flatMap { try TokenShard.read(path: $0) }, expected, name)
            XCTAssertEqual(summary.documents, docs.count)
        }
        // As text (the default), the FIFO is one document.
        let fifo = dir + "/text-fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        _ = writeToFIFO(fifo, Array("one document\nin a pipe".utf8))
        let out = try DataTestSupport.makeDirectory(self)
        let summary = try DatasetPreparer.prepare(inputs: [fifo], outputDirectory: out, name: "ds", valTokens: 0, threads: 1)
        XCTAssertEqual(try TokenShard.read(path: summary.shards[0]), [eot] + GPT2Tokenizer.gpt2.encode("one document\nin a pipe").map { UInt16($0) })

        // Parquet needs random access: a FIFO named .parquet is refused without being opened, and
        // Parquet bytes arriving through a pipe are recognised by their magic.
        let named = dir + "/data.parquet"
        XCTAssertEqual(mkfifo(named, 0o600), 0)
        DataTestSupport.assertThrows(DocumentError.parquet(.notSeekable(path: named)), naming: named) {
            try DatasetPreparer.prepare(inputs: [named], outputDirectory: try DataTestSupport.makeDirectory(self))
        }
        let piped = dir + "/piped"
        XCTAssertEqual(mkfifo(piped, 0o600), 0)
        let writer = writeToFIFO(piped, try DataTestSupport.bytes(ParquetTestSupport.committed + "/gzip_plain_v2_required.parquet"))
        DataTestSupport.assertThrows(DocumentError.parquet(.notSeekable(path: piped)), naming: piped) {
            try DatasetPreparer.prepare(inputs: [piped], outputDirectory: try DataTestSupport.makeDirectory(self))
        }
        // Unblock the writer if it is still waiting for a reader.
        let fd = open(piped, O_RDONLY | O_NONBLOCK)
        if fd >= 0 { close(fd) }
        _ = writer
        let message = DocumentError.parquet(.notSeekable(path: piped)).errorDescription ?? ""
        XCTAssertTrue(message.contains("random access"), message)
    }

    func testAutoSplitRule() {
        let e = UInt16(GPT2Tokenizer.endOfText)
        func stream(_ documents: [Int]) -> [UInt16] { documents.flatMap { [e] + [UInt16](repeating: 1, count: $0 - 1) } }
        // 10 documents of 10 tokens: the document starting at token 90 (exactly 90%).
        XCTAssertEqual(AutoSplit.choose(stream([Int](repeating: 10, count: 10)), endOfText: e),
                       AutoSplit(trainTokens: 90, valTokens: 10, atDocumentBoundary: true))
        // The document start nearest 90% within 75%...95%.
        XCTAssertEqual(AutoSplit.choose(stream([80, 12, 8]), endOfText: e), AutoSplit(trainTokens: 92, valTokens: 8, atDocumentBoundary: true))
        XCTAssertEqual(AutoSplit.choose(stream([76, 24]), endOfText: e), AutoSplit(trainTokens: 76, valTokens: 24, atDocumentBoundary: true))
        // No document start in 75%...95%: the token at 90%.
        XCTAssertEqual(AutoSplit.choose(stream([50, 50]), endOfText: e), AutoSplit(trainTokens: 90, valTokens: 10, atDocumentBoundary: false))
        XCTAssertEqual(AutoSplit.choose(stream([1000]), endOfText: e), AutoSplit(trainTokens: 900, valTokens: 100, atDocumentBoundary: false))
        // Tiny streams keep a token on each side.
        XCTAssertEqual(AutoSplit.choose([e, 1], endOfText: e), AutoSplit(trainTokens: 1, valTokens: 1, atDocumentBoundary: false))
        XCTAssertEqual(AutoSplit.choose(stream([2, 1]), endOfText: e), AutoSplit(trainTokens: 2, valTokens: 1, atDocumentBoundary: true))
    }

    func testEmptyInputIsAnError() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        try DataTestSupport.write("", to: dir + "/empty.txt")
        try DataTestSupport.write("\n\n", to: dir + "/blank.jsonl")
        try DataTestSupport.write("{\"text\": \"\"}\n", to: dir + "/empty-doc.jsonl")
        for inputs in [[dir + "/empty.txt"], [dir + "/blank.jsonl"], [dir + "/empty-doc.jsonl", dir + "/empty.txt"]] {
            let out = try DataTestSupport.makeDirectory(self)
            XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out)) { error in
                XCTAssertEqual(error as? PrepareError, .emptyInput(inputs: inputs, nullRows: 0))
                let message = (error as? LocalizedError)?.errorDescription ?? ""
                for input in inputs { XCTAssertTrue(message.contains(input), message) }
                XCTAssertFalse(message.contains("\n"))
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out), [])
        }
    }

    func testShardSizesAreBounded() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        try DataTestSupport.write("some text", to: dir + "/a.txt")
        let limit = DatasetPreparer.maxShardTokens()
        XCTAssertLessThanOrEqual(limit, Int(Int32.max))
        XCTAssertGreaterThan(limit, 100_000_000)  // fineweb.py's shards fit on any machine that runs the tests
        for (shard, val, option) in [(99_999_999_999, nil, "--shard-tokens"), (1000, 99_999_999_999, "--val-tokens"),
                                     (limit + 1, nil, "--shard-tokens")] as [(Int, Int?, String)] {
            let out = try DataTestSupport.makeDirectory(self)
            XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: [dir + "/a.txt"], outputDirectory: out, shardTokens: shard, valTokens: val)) { error in
                guard case let .invalidOption(message)? = error as? PrepareError else { return XCTFail("\(error)") }
                XCTAssertTrue(message.hasPrefix("\(option) "), message)
                XCTAssertTrue(message.contains("\(limit)"), message)
            }
        }
    }
}

extension DataPrepareInputTests {
    /// `gpt prepare` of one file smaller than a shard writes a train and a val shard and says how it split.
    func testSmallInputThroughBinary() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let docs = (0..<20).map { "{\"text\": \"document number \($0) has a few words\"}" }
        try DataTestSupport.write(docs.joined(separator: "\n"), to: dir + "/small.jsonl")
        let out = dir + "/out"
        let r = try runGPT(["prepare", dir + "/small.jsonl", "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.text.contains("note: the input fits in one shard"), r.text)
        XCTAssertTrue(r.text.contains("cut at a document start"), r.text)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["data_train_000001.npy", "data_val_000000.npy"])
        let val = try TokenShard.read(path: out + "/data_val_000000.npy"), train = try TokenShard.read(path: out + "/data_train_000001.npy")
        XCTAssertEqual(val.filter { $0 == eot }.count, 2)  // the last 2 of 20 equal documents
        XCTAssertEqual(train.filter { $0 == eot }.count, 18)
        // Shard sizes that cannot be allocated are refused with the reason, before anything is read.
        let big = try runGPT(["prepare", dir + "/small.jsonl", "-o", dir + "/out2", "--val-tokens", "99999999999"])
        XCTAssertEqual(big.status, 1)
        XCTAssertTrue(big.stderr.contains("--val-tokens 99999999999 is too large"), big.stderr)
        // An empty input names it.
        try DataTestSupport.write("", to: dir + "/empty.txt")
        let empty = try runGPT(["prepare", dir + "/empty.txt", "-o", dir + "/out3"])
        XCTAssertEqual(empty.status, 1)
        XCTAssertTrue(empty.stderr.contains(dir + "/empty.txt"), empty.stderr)
    }
}
