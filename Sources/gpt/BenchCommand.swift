import ArgumentParser
import Foundation
import GPT2

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure throughput (tokenizer, training step, generation).",
        subcommands: [BenchTokenizer.self])
}

struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Encode a UTF-8 file held in memory; last line: `MB/s <number>`.")

    @Argument(help: "UTF-8 text file.")
    var file: String

    @Option(help: "Encoding threads.")
    var threads: Int = 1

    @Option(help: "Repetitions (the best is reported).")
    var repeats: Int = 1

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read '\(file)'") }
        let bytes = [UInt8](data)
        let tok = GPT2Tokenizer.gpt2
        _ = tok.encode("warm up the tables: é")
        var best = Double.infinity
        var count = 0
        for _ in 0..<max(1, repeats) {
            let start = DispatchTime.now().uptimeNanoseconds
            let ids = bytes.withUnsafeBufferPointer { tok.encode(utf8: $0, threads: threads) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = min(best, seconds)
            count = ids.count
        }
        let mbps = Double(bytes.count) / best / 1e6
        print("bytes \(bytes.count) tokens \(count) seconds \(String(format: "%.3f", best)) threads \(threads)")
        print("MB/s \(String(format: "%.2f", mbps))")
    }
}
