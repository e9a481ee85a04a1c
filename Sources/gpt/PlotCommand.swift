import ArgumentParser
import Foundation
import GPT2

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot a run's train/val loss (and HellaSwag) as SVG, with build-nanogpt's reference lines.")

    @Argument(help: "Run directory holding log.txt.")
    var runDir: String

    @Option(name: .shortAndLong, help: "Output SVG (default: RUN_DIR/loss.svg).")
    var output: String?

    func run() throws {
        let log = runDir + "/log.txt"
        guard FileManager.default.fileExists(atPath: log) else { throw CLIError("no log.txt in '\(runDir)'") }
        let series = try RunLog.read(path: log)
        guard !series.isEmpty else { throw CLIError("'\(log)' has no '<step> <kind> <value>' lines") }
        let path = output ?? runDir + "/loss.svg"
        try Data(SVGPlot.render(series, title: "GPT-2 training: \(runDir)").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        print("wrote \(path)")
    }
}
