import ArgumentParser
import Foundation
import GPT2

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot runs' loss (and HellaSwag) as SVG, or a learning-rate schedule.",
        discussion: """
        gpt plot RUN_DIR                 loss.svg in RUN_DIR from its log.txt
        gpt plot RUN_A RUN_B -o cmp.svg  several runs on one plot, one colour per run
        gpt plot --lr-schedule --max-lr 6e-4 --warmup-steps 715 --max-steps 19073 -o lr.svg
        The train loss is drawn raw (faint) under TensorBoard's smoothing; the loss axis starts \
        after the initial drop from ~10.8. The val loss of OpenAI's GPT-2 124M (3.2924) is drawn \
        only for runs on FineWeb-Edu shards (RUN_DIR/run.json names the data directory); the \
        HellaSwag baselines (GPT-2 124M 0.2955, GPT-3 124M 0.337) whenever HellaSwag was logged.
        """)

    @Argument(help: "Run directories holding log.txt (or log.txt files).")
    var runs: [String] = []

    @Option(name: .shortAndLong, help: "Output SVG (default: RUN_DIR/loss.svg for one run, lr_schedule.svg with --lr-schedule).")
    var output: String?

    @Flag(help: "Logarithmic loss axis.")
    var logY = false

    @Option(help: "Smoothing weight of the train loss, 0 (none) to 0.999, as TensorBoard's slider (default: from the run length).")
    var smoothing: Double?

    @Option(help: "Plot title.")
    var title: String?

    @Flag(help: "Plot the learning-rate schedule given by --max-lr, --warmup-steps, --max-steps, --min-lr-frac.")
    var lrSchedule = false
    @Option(help: "Peak learning rate (with --lr-schedule).")
    var maxLr: Double?
    @Option(help: "Linear warmup steps (with --lr-schedule).")
    var warmupSteps: Int?
    @Option(help: "Optimizer steps (with --lr-schedule).")
    var maxSteps: Int?
    @Option(help: "Final learning rate as a fraction of --max-lr (with --lr-schedule).")
    var minLrFrac: Double = 0.1

    func validate() throws {
        if lrSchedule {
            guard runs.isEmpty else { throw ValidationError("--lr-schedule takes no run directories") }
            guard let maxLr, let warmupSteps, let maxSteps else {
                throw ValidationError("--lr-schedule needs --max-lr, --warmup-steps and --max-steps")
            }
            guard maxLr > 0, maxLr.isFinite else { throw ValidationError("--max-lr must be positive") }
            guard maxSteps >= 1, warmupSteps >= 0, warmupSteps <= maxSteps else {
                throw ValidationError("need --max-steps >= 1 and 0 <= --warmup-steps <= --max-steps")
            }
            guard (0...1).contains(minLrFrac) else { throw ValidationError("--min-lr-frac must be in 0...1") }
        } else {
            guard !runs.isEmpty else { throw ValidationError("give one or more run directories, or --lr-schedule") }
            if runs.count > 1 && output == nil { throw ValidationError("give -o FILE.svg when plotting several runs") }
            if maxLr != nil || warmupSteps != nil || maxSteps != nil { throw ValidationError("--max-lr, --warmup-steps and --max-steps go with --lr-schedule") }
        }
        if let smoothing, !(0..<1).contains(smoothing) { throw ValidationError("--smoothing must be in 0..<1") }
    }

    func run() throws {
        let svg: String, path: String
        if lrSchedule {
            let maxLr = maxLr!, schedule = LRSchedule(maxLR: maxLr, minLR: maxLr * minLrFrac, warmupSteps: warmupSteps!, maxSteps: maxSteps!)
            path = output ?? "lr_schedule.svg"
            svg = SVGPlot.renderSchedule(schedule, title: title ?? "learning rate: build-nanogpt's warmup + cosine schedule")
        } else {
            var plotRuns: [PlotRun] = [], datasets: [ReferenceDataset?] = []
            for run in runs {
                let (dir, log) = Self.locate(run)
                plotRuns.append(PlotRun(name: Self.runName(dir), series: try Self.readLog(log)))
                datasets.append(ReferenceDataset.forRun(directory: dir))
            }
            // A baseline belongs on the plot only when every run trained on its dataset.
            let dataset = Set(datasets).count == 1 ? datasets[0] : nil
            path = output ?? Self.locate(runs[0]).dir + "/loss.svg"
            let defaultTitle = runs.count == 1 ? "GPT-2 training: \(runs[0])" : "GPT-2 training: " + plotRuns.map(\.name).joined(separator: " vs ")
            svg = SVGPlot.render(runs: plotRuns, options: PlotOptions(title: title ?? defaultTitle, dataset: dataset,
                                                                      logY: logY, smoothing: smoothing))
        }
        try AtomicOutputFile.write(to: path) { try $0.write(Array(svg.utf8)) }
        print("wrote \(path)")
    }

    /// (run directory, its log.txt) for a directory or a path to a log file.
    static func locate(_ run: String) -> (dir: String, log: String) {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: run, isDirectory: &isDir), !isDir.boolValue {
            let dir = (run as NSString).deletingLastPathComponent
            return (dir.isEmpty ? "." : dir, run)
        }
        let dir = run.count > 1 && run.hasSuffix("/") ? String(run.dropLast()) : run
        return (dir, dir + "/log.txt")
    }

    static func runName(_ dir: String) -> String {
        let name = URL(fileURLWithPath: dir).standardizedFileURL.lastPathComponent
        return name.isEmpty ? dir : name
    }

    static func readLog(_ path: String) throws -> [String: [(Int, Double)]] {
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("no log file '\(path)'; give a run directory holding log.txt") }
        let series: [String: [(Int, Double)]]
        do {
            series = try RunLog.read(path: path)
        } catch {
            throw CLIError("cannot read '\(path)': \((error as NSError).localizedFailureReason ?? error.localizedDescription)")
        }
        guard !(series["train"] ?? []).isEmpty || !(series["val"] ?? []).isEmpty else {
            throw CLIError("'\(path)' has no '<step> train|val <loss>' lines")
        }
        return series
    }
}
