import ArgumentParser
import Foundation
import GPT2

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model.",
        subcommands: [EvalLoss.self, EvalHellaSwag.self])
}

struct EvalLoss: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loss",
        abstract: "Mean next-token cross-entropy of a text; prints `loss <value>`.",
        discussion: "The text is encoded as one sequence (no <|endoftext|> added) and scored in consecutive windows of the model's context.")

    @Option(help: "Model: an HF GPT-2 directory, an llm.c .bin, our checkpoint, or a preset.")
    var model: String

    @Option(help: "UTF-8 text file.")
    var text: String

    @Option(help: "Device: cpu, cuda, or auto (CUDA when usable, else the CPU).")
    var device: ComputeDevice = .cpu

    @Option(help: "CUDA precision: bf16 or fp32.")
    var precision: CUDAPrecision = .bf16

    func run() throws {
        let report = try wantsCUDA(device)
        let gpt = try resolveModel(model)
        if text != "-", let problem = FileKind.regularFileProblem(text) { throw CLIError("cannot read --text '\(text)': \(problem)") }
        let (fd, name) = try openInput(text)
        defer { if fd != 0 { close(fd) } }
        var ids: [Int32] = []
        try GPT2Tokenizer.gpt2.encodeStream(fd: fd, path: name) { ids += $0 }
        guard ids.count >= 2 else { throw CLIError("'\(text)' has \(ids.count) token(s); need at least 2 to score") }
        try gpt.config.checkTokens(ids, source: "'\(name)'")
        let loss: Double
        if report != nil {
            let ctx = try openCUDA(ordinal: 0, precision: precision, headSize: gpt.config.headSize)
            FileHandle.standardError.write(Data((describeCUDA(ctx) + "\n").utf8))
            var engines: [Int: CUDABackend] = [:]   // one per window length (the last window is shorter)
            loss = try windowedLoss(T: gpt.config.maxSeqLen, ids) { inputs, targets in
                let n = inputs.count
                if engines[n] == nil { engines[n] = try makeCUDAEngine(gpt, B: 1, T: n, context: ctx) }
                return try engines[n]!.forward(inputs: inputs, targets: targets)
            }
        } else {
            loss = windowedLoss(gpt, ids)
        }
        print("tokens \(ids.count) predictions \(ids.count - 1)")
        print("loss \(loss)")
    }
}

/// Mean cross-entropy of predicting ids[1...] from the ids before them, in consecutive
/// non-overlapping windows of at most the model's context.
func windowedLoss(_ gpt: GPT2, _ ids: [Int32]) -> Double {
    // the closure never throws on the CPU
    try! windowedLoss(T: gpt.config.maxSeqLen, ids) { gpt.forward(inputs: $0, targets: $1, B: 1, T: $0.count) }
}

/// The same windows, each scored by `meanLoss(inputs, targets)` (one row of up to `T` tokens).
func windowedLoss(T: Int, _ ids: [Int32], meanLoss: ([Int32], [Int32]) throws -> Float) throws -> Double {
    var total = 0.0
    var count = 0
    var start = 0
    while start < ids.count - 1 {
        let n = min(T, ids.count - 1 - start)
        let inputs = Array(ids[start..<start + n]), targets = Array(ids[start + 1...start + n])
        let mean = try meanLoss(inputs, targets)
        total += Double(mean) * Double(n)
        count += n
        start += n
    }
    return total / Double(count)
}
