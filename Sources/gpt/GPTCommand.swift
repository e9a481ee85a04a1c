import ArgumentParser
import GPT2

@main
struct GPTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt",
        abstract: "Train and run GPT-2 models.",
        subcommands: []
    )
}
