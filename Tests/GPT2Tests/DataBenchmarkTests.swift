// Release-only check and benchmark of `prepare` on a large corpus: the shards of a text file, cut into
// pieces and encoded on several threads, hold exactly EOT + encode(whole file). Skipped unless
// GPT2_DATA_BENCH names a text file, e.g. ../shared/data/corpora/large_english.txt (xz -dk it first):
//   GPT2_DATA_BENCH=/path/large_english.txt swift test -c release --filter DataBenchmarkTests
#if !DEBUG
import Foundation
import XCTest
@testable import GPT2

final class DataBenchmarkTests: XCTestCase {
    func testLargeCorpusMatchesWholeEncoding() throws {
        guard let corpus = ProcessInfo.processInfo.environment["GPT2_DATA_BENCH"] else {
            throw XCTSkip("set GPT2_DATA_BENCH to a large UTF-8 text file")
        }
        let bytes = try DataTestSupport.bytes(corpus)
        var t0 = Date()
        var whole: [Int32] = [GPT2Tokenizer.endOfText]
        bytes.withUnsafeBufferPointer { GPT2Tokenizer.gpt2.encode(utf8: $0, into: &whole) }
        let wholeSeconds = Date().timeIntervalSince(t0)
        print(String(format: "whole-file encode, 1 thread: %.1f MB/s, %d tokens", Double(bytes.count) / 1e6 / wholeSeconds, whole.count))

        let maxThreads = Int(ProcessInfo.processInfo.environment["GPT2_DATA_BENCH_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
        for threads in Set([1, maxThreads]).sorted() {
            let out = try DataTestSupport.makeDirectory(self)
            t0 = Date()
            let summary = try DatasetPreparer.prepare(inputs: [corpus], outputDirectory: out, name: "bench",
                                                      shardTokens: 10_000_000, format: .bin, threads: threads)
            let seconds = Date().timeIntervalSince(t0)
            print(String(format: "prepare, %d thread(s): %.1f MB/s, %.0f tokens/s, %d shards",
                         threads, Double(summary.bytesRead) / 1e6 / seconds, Double(summary.tokens) / seconds, summary.shards.count))
            var offset = 0
            for path in summary.shards {
                let shard = try TokenShard.read(path: path)
                for (i, t) in shard.enumerated() where Int32(t) != whole[offset + i] {
                    XCTFail("\(path): token \(i) (stream \(offset + i)) is \(t), whole-file encoding has \(whole[offset + i])")
                    return
                }
                offset += shard.count
            }
            XCTAssertEqual(offset, whole.count)
        }
    }

    /// Reading alone (JSON parsing, UTF-8 checks, splitting) vs the whole pipeline, on a JSONL file.
    func testJSONLThroughput() throws {
        guard let corpus = ProcessInfo.processInfo.environment["GPT2_DATA_BENCH_JSONL"] else {
            throw XCTSkip("set GPT2_DATA_BENCH_JSONL to a large JSONL file")
        }
        var t0 = Date()
        let reader = try DocumentReader(inputs: [corpus])
        while try reader.next() != nil {}
        var seconds = Date().timeIntervalSince(t0)
        print(String(format: "read only: %.1f MB/s, %d documents", Double(reader.bytesRead) / 1e6 / seconds, reader.documents))
        let maxThreads = Int(ProcessInfo.processInfo.environment["GPT2_DATA_BENCH_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
        for threads in Set([1, maxThreads]).sorted() {
            let out = try DataTestSupport.makeDirectory(self)
            t0 = Date()
            let summary = try DatasetPreparer.prepare(inputs: [corpus], outputDirectory: out, name: "bench", format: .bin, threads: threads)
            seconds = Date().timeIntervalSince(t0)
            print(String(format: "prepare JSONL, %d thread(s): %.1f MB/s, %.0f tokens/s",
                         threads, Double(summary.bytesRead) / 1e6 / seconds, Double(summary.tokens) / seconds))
        }
    }
}
#endif
