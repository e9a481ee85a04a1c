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

    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        let gpt = try resolveModel(model)
        if text != "-", let problem = FileKind.regularFileProblem(text) { throw CLIError("cannot read --text '\(text)': \(problem)") }
        let (fd, name) = try openInput(text)
        defer { if fd != 0 { close(fd) } }
        var ids: [Int32] = []
        try GPT2Tokenizer.gpt2.encodeStream(fd: fd, path: name) { ids += $0 }
        guard ids.count >= 2 else { throw CLIError("'\(text)' has \(ids.count) token(s); need at least 2 to score") }
        try gpt.config.checkTokens(ids, source: "'\(name)'")
        let engine = try makeInferenceEngine(gpt, deviceOptions)
        let loss = try windowedLoss(engine: engine, ids: ids)
        print("tokens \(ids.count) predictions \(ids.count - 1)")
        print("loss \(loss)")
    }
}
