// DatasetPreparer: fineweb.py's packing (EOT before each document, spill across shards, shard 0 is
// val), --val-tokens, identical bytes for any thread count, atomic shard writes, errors, Shakespeare.
import Foundation
import GPT2Resources
import XCTest
@testable import GPT2

final class DataPrepareTests: XCTestCase {
    private let eot = UInt16(GPT2Tokenizer.endOfText)

    /// A mixed corpus: a JSONL file of many small documents, a text file, a long text file.
    private func makeCorpus(_ dir: String) throws -> (inputs: [String], documents: [String]) {
        var docs: [String] = []
        var jsonl = ""
        for i in 0..<40 {
            let text = "Document \(i): " + String(repeating: "the quick brown fox \(i) ", count: i % 7) + "end."
            docs.append(text)
            let data = try JSONSerialization.data(withJSONObject: ["text": text])
            jsonl += String(decoding: data, as: UTF8.self) + "\n"
        }
        try DataTestSupport.write(jsonl, to: dir + "/a.jsonl")
        let short = "A short text file.\n"
        try DataTestSupport.write(short, to: dir + "/b.txt")
        docs.append(short)
        let long = DataDocumentTests.trickyText
        try DataTestSupport.write(long, to: dir + "/c.txt")
        docs.append(long)
        return ([dir + "/a.jsonl", dir + "/b.txt", dir + "/c.txt"], docs)
    }

    /// fineweb.py's token stream: EOT + encode(text) for each document.
    private func stream(_ documents: [String]) -> [UInt16] {
        var all: [UInt16] = []
        for d in documents {
            all.append(eot)
            all += GPT2Tokenizer.gpt2.encode(d).map { UInt16($0) }
        }
        return all
    }

    private func shardNames(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("ds_") }.sorted()
    }

    func testShardsMatchFinewebPacking() throws {
        let src = try DataTestSupport.makeDirectory(self)
        let (inputs, docs) = try makeCorpus(src)
        let expected = stream(docs)
        let shardTokens = 97
        XCTAssertGreaterThan(expected.count, 10 * shardTokens)

        let out = try DataTestSupport.makeDirectory(self) + "/out/nested"  // created on demand
        var reports: [PrepareProgress] = []
        let summary = try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out, name: "ds", shardTokens: shardTokens,
                                                  format: .npy, threads: 2, pieceBytes: 64) { reports.append($0) }
        let shardCount = (expected.count + shardTokens - 1) / shardTokens
        let names = (0..<shardCount).map {
            TokenShard.fileName(name: "ds", split: $0 == 0 ? .val : .train, index: $0, format: .npy)
        }
        XCTAssertEqual(shardNames(out), names.sorted())
        XCTAssertEqual(summary.shards, names.map { out + "/" + $0 })
        var all: [UInt16] = []
        for (i, path) in summary.shards.enumerated() {
            let tokens = try TokenShard.read(path: path)
            XCTAssertEqual(tokens.count, i < shardCount - 1 ? shardTokens : expected.count - shardTokens * (shardCount - 1))
            all += tokens
        }
        XCTAssertEqual(all, expected)
        XCTAssertEqual(summary.tokens, expected.count)
        XCTAssertEqual(summary.valTokens, shardTokens)
        XCTAssertEqual(summary.documents, docs.count)

        // Progress: monotone, one report per shard, final totals.
        XCTAssertEqual(reports.compactMap(\.shardWritten), summary.shards)
        XCTAssertEqual(reports.map(\.tokens), reports.map(\.tokens).sorted())
        let last = try XCTUnwrap(reports.last)
        XCTAssertEqual(last.tokens, expected.count)
        XCTAssertEqual(last.shardsWritten, shardCount)
        XCTAssertEqual(last.documents, docs.count)
        XCTAssertEqual(last.bytesRead, inputs.reduce(0) { $0 + ((try? DataTestSupport.bytes($1).count) ?? 0) })
        XCTAssertGreaterThan(last.megabytesPerSecond, 0)
        XCTAssertGreaterThan(last.tokensPerSecond, 0)
    }

    func testValTokensAndEdgeCases() throws {
        let src = try DataTestSupport.makeDirectory(self)
        let (inputs, docs) = try makeCorpus(src)
        let expected = stream(docs)

        // --val-tokens 30: val gets the first 30 tokens, train shards of 200 start at token 30.
        var out = try DataTestSupport.makeDirectory(self)
        var summary = try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out, name: "ds", shardTokens: 200,
                                                  valTokens: 30, format: .bin, threads: 2)
        XCTAssertEqual(try TokenShard.read(path: out + "/ds_val_000000.bin"), Array(expected[..<30]))
        XCTAssertEqual(try TokenShard.read(path: out + "/ds_train_000001.bin"), Array(expected[30..<230]))
        XCTAssertEqual(try summary.shards.flatMap { try TokenShard.read(path: $0) }, expected)
        XCTAssertEqual(summary.valTokens, 30)

        // --val-tokens 0: no validation shard.
        out = try DataTestSupport.makeDirectory(self)
        summary = try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out, name: "ds", shardTokens: 500, valTokens: 0, threads: 1)
        XCTAssertEqual(summary.shards.first, out + "/ds_train_000001.npy")
        XCTAssertEqual(try summary.shards.flatMap { try TokenShard.read(path: $0) }, expected)

        // Input smaller than one shard: its last ~10% (from a document start) is val, the rest train.
        out = try DataTestSupport.makeDirectory(self)
        summary = try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out, name: "ds", threads: 1)
        XCTAssertEqual(shardNames(out), ["ds_train_000001.npy", "ds_val_000000.npy"])
        XCTAssertEqual(summary.shards, [out + "/ds_val_000000.npy", out + "/ds_train_000001.npy"])
        let val = try TokenShard.read(path: summary.shards[0]), train = try TokenShard.read(path: summary.shards[1])
        XCTAssertEqual(train + val, expected)
        // The last document (c.txt) covers 75%...95% of the stream, so the cut falls inside it, at 90%.
        XCTAssertEqual(summary.autoSplit, AutoSplit(trainTokens: train.count, valTokens: val.count, atDocumentBoundary: false))
        XCTAssertEqual(summary.autoSplit, AutoSplit.choose(expected, endOfText: eot))
        XCTAssertEqual(train.count, expected.count - expected.count / 10)
        XCTAssertEqual(summary.valTokens, val.count)
        XCTAssertGreaterThanOrEqual(val.count, expected.count / 20)
        XCTAssertLessThanOrEqual(val.count, expected.count / 4)

        // A stream that fills its shards exactly leaves no empty trailing shard.
        out = try DataTestSupport.makeDirectory(self)
        summary = try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out, name: "ds", shardTokens: expected.count / 2 + expected.count % 2,
                                              valTokens: expected.count % 2 == 0 ? nil : expected.count / 2, threads: 1)
        XCTAssertEqual(summary.shards.count, 2)
        XCTAssertEqual(try summary.shards.flatMap { try TokenShard.read(path: $0) }, expected)

        // One document longer than several shards spills across all of them.
        out = try DataTestSupport.makeDirectory(self)
        summary = try DatasetPreparer.prepare(inputs: [src + "/c.txt"], outputDirectory: out, name: "ds", shardTokens: 64, threads: 2, pieceBytes: 128)
        XCTAssertGreaterThan(summary.shards.count, 5)
        XCTAssertEqual(try summary.shards.flatMap { try TokenShard.read(path: $0) }, stream([docs.last!]))
    }

    func testIdenticalBytesForAnyThreadCount() throws {
        let src = try DataTestSupport.makeDirectory(self)
        let (inputs, docs) = try makeCorpus(src)
        let expected = stream(docs)
        for format in ShardFormat.allCases {
            var reference: [[UInt8]]?
            for threads in [1, 2, 4] {
                let out = try DataTestSupport.makeDirectory(self)
                let summary = try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out, name: "ds", shardTokens: 150,
                                                          format: format, threads: threads, pieceBytes: 48)
                let files = try summary.shards.map { try DataTestSupport.bytes($0) }
                if let reference {
                    XCTAssertEqual(files, reference, "threads \(threads) \(format)")
                } else {
                    reference = files
                    XCTAssertEqual(try summary.shards.flatMap { try TokenShard.read(path: $0) }, expected)
                }
            }
        }
    }

    /// An error stops the run after the complete shards before it; which ones does not depend on threads.
    func testErrorsLeaveOnlyCompleteShards() throws {
        let src = try DataTestSupport.makeDirectory(self)
        let (inputs, docs) = try makeCorpus(src)
        let before = stream(docs + ["fine text "]).count  // tokens before the bad byte
        let bad = src + "/z_bad.txt"
        try DataTestSupport.write(Array("fine text ".utf8) + [0xFE], to: bad)
        for threads in [1, 4] {
            let out = try DataTestSupport.makeDirectory(self)
            DataTestSupport.assertThrows(DocumentError.invalidUTF8(path: bad, offset: 10, line: nil), naming: bad) {
                try DatasetPreparer.prepare(inputs: inputs + [bad], outputDirectory: out, name: "ds", shardTokens: 100,
                                            threads: threads, pieceBytes: 64)
            }
            let names = shardNames(out)
            XCTAssertEqual(names.count, before / 100, "threads \(threads)")
            for name in names { XCTAssertEqual(try TokenShard.tokenCount(path: out + "/" + name), 100, name) }  // no partial shard
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix(".") }, [])  // no .tmp
        }
        // A bad JSONL line, parsed on a worker thread, is reported with its line number; the shards before it stay.
        let jsonl = src + "/bad.jsonl"
        var lines = docs.prefix(30).map { String(decoding: try! JSONSerialization.data(withJSONObject: ["text": $0]), as: UTF8.self) }
        lines.insert("{\"text\": null}", at: 20)
        try DataTestSupport.write(lines.joined(separator: "\n"), to: jsonl)
        let beforeLine = stream(Array(docs.prefix(20))).count
        for threads in [1, 4] {
            let out = try DataTestSupport.makeDirectory(self)
            DataTestSupport.assertThrows(DocumentError.badJSONLine(path: jsonl, line: 21, reason: "\"text\" is not a string"), naming: jsonl) {
                try DatasetPreparer.prepare(inputs: [jsonl], outputDirectory: out, name: "ds", shardTokens: 50, threads: threads)
            }
            XCTAssertEqual(shardNames(out).count, beforeLine / 50, "threads \(threads)")
        }
    }

    func testOutputDirectoryErrors() throws {
        let src = try DataTestSupport.makeDirectory(self)
        let (inputs, _) = try makeCorpus(src)
        let file = src + "/b.txt"
        // Below a regular file (fails for root too, unlike permission bits).
        XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: inputs, outputDirectory: file + "/out")) { error in
            guard case .outputNotWritable(file + "/out", _)? = error as? PrepareError else { return XCTFail("\(error)") }
            XCTAssertTrue((error as? LocalizedError)?.errorDescription?.contains(file + "/out") ?? false)
        }
        XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: inputs, outputDirectory: file)) { error in
            XCTAssertEqual(error as? PrepareError, .outputNotWritable(path: file, reason: "it is not a directory"))
        }
        if getuid() != 0 {
            let locked = src + "/locked"
            try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o555])
            XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: inputs, outputDirectory: locked)) { error in
                guard case .outputNotWritable(locked, _)? = error as? PrepareError else { return XCTFail("\(error)") }
            }
        }
        XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: inputs, outputDirectory: src, shardTokens: 0))
        XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: inputs, outputDirectory: src, name: "a/b"))
        XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: inputs, outputDirectory: src, valTokens: -1))
    }

    func testExistingShardsNeedOverwrite() throws {
        let src = try DataTestSupport.makeDirectory(self)
        let (inputs, docs) = try makeCorpus(src)
        let out = try DataTestSupport.makeDirectory(self)
        try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out, name: "ds", shardTokens: 100, threads: 1)
        let first = shardNames(out)
        XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out, name: "ds", shardTokens: 100)) { error in
            XCTAssertEqual(error as? PrepareError, .existingShards(directory: out, first: first[0], count: first.count))
        }
        // Another name in the same directory is fine.
        try DatasetPreparer.prepare(inputs: [src + "/b.txt"], outputDirectory: out, name: "other", threads: 1)
        // Overwrite with fewer, larger shards: the stale ones go.
        let summary = try DatasetPreparer.prepare(inputs: inputs, outputDirectory: out, name: "ds", shardTokens: 1000,
                                                  threads: 1, overwrite: true)
        XCTAssertEqual(shardNames(out), summary.shards.map { splitPath($0).base }.sorted())
        XCTAssertEqual(try summary.shards.flatMap { try TokenShard.read(path: $0) }, stream(docs))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/other_val_000000.npy"))
    }

    func testShakespeare() throws {
        var count = 0
        _ = gpt2_resource_shakespeare(&count)
        XCTAssertEqual(count, 1_115_339)
        let (train, val) = DatasetPreparer.shakespeareSplit()
        XCTAssertEqual(train.count + val.count, count)
        XCTAssertEqual(train.last, 0x0A)
        XCTAssertGreaterThanOrEqual(train.count, count * 9 / 10)
        XCTAssertLessThan(train.count, count * 9 / 10 + 200)
        XCTAssertFalse(train[(count * 9 / 10)..<(train.count - 1)].contains(0x0A))

        let out = try DataTestSupport.makeDirectory(self)
        let summary = try DatasetPreparer.prepareShakespeare(outputDirectory: out, format: .bin, threads: 2)
        XCTAssertEqual(summary.shards, [out + "/shakespeare_val_000000.bin", out + "/shakespeare_train_000001.bin"])
        let valTokens = try TokenShard.read(path: summary.shards[0])
        XCTAssertEqual(valTokens, [eot] + GPT2Tokenizer.gpt2.encode(String(decoding: val, as: UTF8.self)).map { UInt16($0) })
        let trainTokens = try TokenShard.read(path: summary.shards[1])
        XCTAssertEqual(trainTokens.first, eot)
        XCTAssertFalse(trainTokens.dropFirst().contains(eot))
        // The train shard starts like the encoding of the corpus' first lines.
        let head = Array(train.prefix(2000))
        let cut = head.withUnsafeBufferPointer { PieceSplitter.cut($0, target: 1500)! }
        let headIds = GPT2Tokenizer.gpt2.encode(String(decoding: head[..<cut], as: UTF8.self)).map { UInt16($0) }
        XCTAssertEqual(Array(trainTokens[1...headIds.count]), headIds)
        XCTAssertEqual(summary.tokens, valTokens.count + trainTokens.count)
        // Running it again replaces the files.
        try DatasetPreparer.prepareShakespeare(outputDirectory: out, format: .bin, threads: 1)
        XCTAssertEqual(try TokenShard.read(path: summary.shards[1]), trainTokens)
    }
}
