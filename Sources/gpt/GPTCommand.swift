import ArgumentParser
import GPT2

@main
struct GPTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt",
        abstract: "Train and run GPT-2 models.",
        version: "0.1.0",
        subcommands: [Train.self, Prepare.self, Sample.self, Eval.self, Export.self, Plot.self, Inspect.self, Encode.self, Decode.self, Bench.self, Info.self, Selftest.self],
        defaultSubcommand: Train.self
    )

    /// Line-buffered stdout, so `gpt train > out.txt` or `| tee` has every line at once, even
    /// after a crash or kill -9.
    static func main() {
        StandardOutput.useLineBuffering()
        Self.main(nil)
    }
}

