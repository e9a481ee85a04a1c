// Plots: the tick algorithm (1-2-5 steps), the loss y range, TensorBoard's smoothing, the dataset
// rule for baselines, the SVG's series, `gpt plot` end to end, and a headless Chromium screenshot
// of the SVG whose pixels must show the curves (skipped without chromium).
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import GPT2

final class PlotTests: XCTestCase {
    // MARK: - Ticks

    func testTickStepsAreOneTwoOrFiveTimesAPowerOfTen() {
        XCTAssertEqual(PlotScale.ticks(lo: 2.85, hi: 7.2), [3, 4, 5, 6, 7])
        XCTAssertEqual(PlotScale.ticks(lo: 0, hi: 249, target: 6), [0, 50, 100, 150, 200])
        XCTAssertEqual(PlotScale.ticks(lo: 0, hi: 19073, target: 5), [0, 5000, 10000, 15000])
        XCTAssertEqual(PlotScale.ticks(lo: 0, hi: 500, target: 5), [0, 100, 200, 300, 400, 500])
        for (lo, hi) in [(2.92, 7.06), (0.0, 124.0), (0.0, 6.48e-4), (3.1, 3.4), (-1.0, 1.0), (0.2877, 0.3412), (1e-9, 1e-8)] {
            for target in 3...9 {
                let t = PlotScale.ticks(lo: lo, hi: hi, target: target)
                XCTAssertGreaterThanOrEqual(t.count, 2, "\(lo)...\(hi) target \(target): \(t)")
                let step = t[1] - t[0]
                let mantissa = step / pow(10, floor(log10(step)))
                XCTAssertTrue([1, 2, 5, 10].contains { abs(mantissa - $0) < 1e-6 }, "step \(step) for \(lo)...\(hi)")
                for v in t {
                    XCTAssertTrue(v >= lo - 1e-12 && v <= hi + 1e-12, "tick \(v) outside \(lo)...\(hi)")
                    XCTAssertEqual((v / step).rounded(), v / step, accuracy: 1e-6, "tick \(v) not a multiple of \(step)")
                }
            }
        }
        XCTAssertEqual(PlotScale.label(0.1 + 0.2, step: 0.1), "0.3")
        XCTAssertEqual(PlotScale.label(6e-4, step: 1e-4), "0.0006")
        XCTAssertEqual(PlotScale.label(15000, step: 5000), "15000")
        XCTAssertEqual(PlotScale.label(-1e-17, step: 0.5), "0.0")
        XCTAssertEqual(PlotScale.logTicks(lo: 0.5, hi: 200), [0.5, 1, 2, 5, 10, 20, 50, 100, 200])
        XCTAssertEqual(PlotScale.logTicks(lo: 3, hi: 11), [4, 6, 8, 10])
    }

    // MARK: - Y range

    /// A loss curve like a real run: 10.9 at step 0, a fast drop, a slow decay, noise.
    private func syntheticRun(steps: Int = 1000, valEvery: Int = 100, seed: UInt64 = 7) -> [String: [(Int, Double)]] {
        var rng = SplitMix64(seed: seed)
        func noise() -> Double { (Double(rng.next() % 1_000_000) / 1_000_000 - 0.5) * 0.3 }
        func curve(_ s: Int) -> Double { 3.4 + 7.5 * exp(-Double(s) / 40) + exp(-Double(s) / 400) }
        var train: [(Int, Double)] = [], val: [(Int, Double)] = []
        for s in 0..<steps {
            train.append((s, curve(s) + noise()))
            if s % valEvery == 0 || s == steps - 1 { val.append((s, curve(s) + 0.05)) }
        }
        return ["train": train, "val": val]
    }

    func testLossRangeLeavesOutTheInitialTransientButKeepsValAndBaselines() {
        let run = syntheticRun()
        let train = run["train"]!, val = run["val"]!
        let r = PlotScale.lossRange(train: train, val: val, references: [])
        XCTAssertLessThan(r.upperBound, 8, "the drop from 10.9 must not set the range: \(r)")
        XCTAssertGreaterThan(r.upperBound, 5.5, "step-100 val (about 5.1) must be inside: \(r)")
        for p in val where p.0 >= 50 { XCTAssertTrue(r.contains(p.1), "val \(p) outside \(r)") }
        XCTAssertLessThanOrEqual(r.lowerBound, train.map(\.1).min()!, "the lowest loss stays visible")
        let withBaseline = PlotScale.lossRange(train: train, val: val, references: [2.5])
        XCTAssertLessThan(withBaseline.lowerBound, 2.5)
        let log = PlotScale.lossRange(train: train, val: val, references: [], logScale: true)
        XCTAssertTrue(log.lowerBound > 0 && log.upperBound < 8, "\(log)")
        // Short runs show every point, the first one too.
        let shortRun = Array(train.prefix(20))
        let short = PlotScale.lossRange(train: shortRun, val: [], references: [])
        for p in shortRun { XCTAssertTrue(short.contains(p.1), "\(p) outside \(short)") }
        XCTAssertTrue(PlotScale.lossRange(train: [(0, 10.9)], val: [], references: []).contains(10.9))
        XCTAssertEqual(PlotScale.quantile([1, 2, 3, 4], 0.5), 2.5)
    }

    func testSmoothingIsTensorBoardsDebiasedEMA() {
        // last = last·w + (1-w)·v; smoothed = last / (1 - w^n): by hand for w = 0.5
        let s = PlotScale.smoothed([1, 2, 3], weight: 0.5)
        XCTAssertEqual(s[0], 1, accuracy: 1e-12)
        XCTAssertEqual(s[1], 1.25 / 0.75, accuracy: 1e-12)
        XCTAssertEqual(s[2], 2.125 / 0.875, accuracy: 1e-12)
        for v in PlotScale.smoothed([4, 4, 4, 4], weight: 0.9) { XCTAssertEqual(v, 4, accuracy: 1e-12, "a constant stays constant (debiased)") }
        XCTAssertEqual(PlotScale.smoothed([1, 5], weight: 0), [1, 5])
        XCTAssertEqual(PlotScale.defaultSmoothing(count: 20), 0)
        XCTAssertEqual(PlotScale.defaultSmoothing(count: 500), 0.9, accuracy: 1e-12)
    }

    // MARK: - Baselines

    func testBaselinesOnlyForTheirDataset() throws {
        XCTAssertEqual(ReferenceDataset(shardFileNames: ["edufineweb_val_000000.npy", "edufineweb_train_000001.npy", "README"]), .fineWebEdu)
        XCTAssertEqual(ReferenceDataset(shardFileNames: ["edu_fineweb_val_000000.bin", "edu_fineweb_train_000001.bin"]), .fineWebEdu)
        XCTAssertNil(ReferenceDataset(shardFileNames: ["shakespeare_val_000000.npy", "shakespeare_train_000001.npy"]))
        XCTAssertNil(ReferenceDataset(shardFileNames: ["edufineweb_val_000000.npy", "mine_train_000001.npy"]))
        XCTAssertNil(ReferenceDataset(shardFileNames: []))

        let root = try TestPaths.temporaryDirectory().path
        let data = root + "/data", run = root + "/run"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        XCTAssertNil(ReferenceDataset.forRun(directory: run), "no run.json")
        for n in ["edufineweb_val_000000.npy", "edufineweb_train_000001.npy"] { XCTAssertTrue(FileManager.default.createFile(atPath: data + "/" + n, contents: nil)) }
        let model = GPT2Config(numLayers: 1, numHeads: 1, channels: 8)
        try TrainingRunTests.configuration(data: data, steps: 10).save(to: run + "/run.json", model: model)
        XCTAssertEqual(ReferenceDataset.forRun(directory: run), .fineWebEdu)
        try TrainingRunTests.configuration(data: root + "/nowhere", steps: 10).save(to: run + "/run.json", model: model)
        XCTAssertNil(ReferenceDataset.forRun(directory: run))

        let series = syntheticRun()
        XCTAssertFalse(seriesNames(SVGPlot.render(series, title: "t")).contains { $0.contains("val loss") && $0.contains("OpenAI") })
        XCTAssertTrue(seriesNames(SVGPlot.render(series, title: "t", dataset: .fineWebEdu)).contains("OpenAI GPT-2 (124M) val loss"))
    }

    // MARK: - SVG documents

    /// Parses the SVG (it must be well-formed XML) and returns every data-series attribute.
    private func seriesNames(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        final class Collector: NSObject, XMLParserDelegate {
            var series: [String] = []
            var root: String?
            func parser(_ p: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                if root == nil { root = name }
                if let s = attributes["data-series"] { series.append(s) }
            }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let c = Collector()
        parser.delegate = c
        XCTAssertTrue(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")", file: file, line: line)
        XCTAssertEqual(c.root, "svg", file: file, line: line)
        return c.series
    }

    func testPlotHasSmoothedAndRawTrainValAndHellaSwagPanels() {
        var series = syntheticRun()
        series["hella"] = [(0, 0.25), (500, 0.262), (999, 0.27)]
        let svg = SVGPlot.render(series, title: "run <a & b>", dataset: .fineWebEdu)
        let names = seriesNames(svg)
        for name in ["train loss", "train loss (raw)", "val loss", "HellaSwag", "OpenAI GPT-2 (124M) val loss",
                     "OpenAI GPT-2 (124M)", "OpenAI GPT-3 (124M)"] {
            XCTAssertTrue(names.contains(name), "missing series \(name): \(names)")
        }
        XCTAssertTrue(svg.contains("class=\"grid\""))
        XCTAssertTrue(svg.contains("↑ off scale: "), "the off-scale start is noted")
        // Without HellaSwag points there is no HellaSwag panel nor its baselines.
        let plain = seriesNames(SVGPlot.render(syntheticRun(), title: "t"))
        XCTAssertFalse(plain.contains { $0.contains("HellaSwag") || $0.contains("GPT-3") }, "\(plain)")
    }

    func testOverlayHasOneColourPerRun() {
        let runs = [PlotRun(name: "a", series: syntheticRun(seed: 1)), PlotRun(name: "b", series: syntheticRun(seed: 2))]
        let svg = SVGPlot.render(runs: runs, options: PlotOptions(title: "cmp", logY: true))
        let names = seriesNames(svg)
        for name in ["a train loss", "b train loss", "a val loss", "b val loss"] { XCTAssertTrue(names.contains(name), "\(names)") }
        XCTAssertTrue(svg.contains("loss (log scale)"))
        func colour(of series: String) -> String? {
            guard let r = svg.range(of: "data-series=\"\(series)\"") else { return nil }
            let rest = svg[r.upperBound...]
            guard let s = rest.range(of: "stroke=\"") else { return nil }
            return String(rest[s.upperBound...].prefix(7))
        }
        XCTAssertNotNil(colour(of: "a train loss"))
        XCTAssertEqual(colour(of: "a train loss"), colour(of: "a val loss"))
        XCTAssertNotEqual(colour(of: "a train loss"), colour(of: "b train loss"))
    }

    func testScheduleFollowsLRSchedule() {
        let schedule = LRSchedule(maxLR: 6e-4, minLR: 6e-5, warmupSteps: 10, maxSteps: 100)
        let svg = SVGPlot.renderSchedule(schedule, title: "lr")
        XCTAssertTrue(seriesNames(svg).contains("learning rate"))
        XCTAssertTrue(svg.contains("warmup ends (step 10)"))
        XCTAssertTrue(svg.contains("(×1e-4)"), "small values are labelled in units of 1e-4")
        // one point per step here: 101 steps plus the warmup corner
        XCTAssertTrue(svg.contains("data-points=\"102\""), "expected 102 points")
    }

    // MARK: - gpt plot

    func testPlotCommandWritesFilesAndReportsBadOutputInOneLine() throws {
        let root = try TestPaths.temporaryDirectory().path
        for (run, seed) in [("r1", UInt64(1)), ("r2", 2)] {
            try FileManager.default.createDirectory(atPath: root + "/" + run, withIntermediateDirectories: true)
            let lines = syntheticRun(steps: 120, valEvery: 40, seed: seed).flatMap { kind, pts in pts.map { "\($0.0) \(kind) \($0.1)" } }
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: root + "/\(run)/log.txt"))
        }
        var r = try runGPT(["plot", root + "/r1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/r1/loss.svg"))
        r = try runGPT(["plot", root + "/r1", root + "/r2", "-o", root + "/cmp.svg", "--log-y"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(try String(contentsOfFile: root + "/cmp.svg", encoding: .utf8).contains("r2 train loss"))
        r = try runGPT(["plot", "--lr-schedule", "--max-lr", "6e-4", "--warmup-steps", "715", "--max-steps", "19073", "-o", root + "/lr.svg"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(try String(contentsOfFile: root + "/lr.svg", encoding: .utf8).contains("warmup ends (step 715)"))

        r = try runGPT(["plot", root + "/r1", "-o", "/missing/dir/x.svg"])
        XCTAssertNotEqual(r.status, 0)
        let message = r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(message.contains("\n"), "one line: \(message)")
        XCTAssertTrue(message.contains("/missing/dir/x.svg") && !message.contains("NSCocoaError"), message)
        r = try runGPT(["plot", root + "/nope"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(root + "/nope/log.txt"), r.stderr)
    }

    // MARK: - In a browser

    func testChromiumDrawsTheCurves() throws {
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("chromium not installed (apt-get install chromium)")
        }
        guard let python = referencePython(importing: ["zlib", "json"]) else { throw XCTSkip("no python3") }
        var series = syntheticRun()
        series["hella"] = [(0, 0.25), (200, 0.258), (400, 0.266), (600, 0.272), (800, 0.279), (999, 0.283)]
        let dir = try TestPaths.temporaryDirectory().path
        let svgPath = dir + "/loss.svg", png = dir + "/loss.png"
        let svg = SVGPlot.render(series, title: "GPT-2 training: browser check", dataset: .fineWebEdu)
        try Data(svg.utf8).write(to: URL(fileURLWithPath: svgPath))
        let size = (1420, 490)
        let r = try runProcess(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                          "--force-device-scale-factor=1", "--window-size=\(size.0),\(size.1)",
                                          "--user-data-dir=\(dir)/profile", "--screenshot=\(png)", "file://" + svgPath])
        guard FileManager.default.fileExists(atPath: png) else { return XCTFail("no screenshot (status \(r.status)): \(r.stderr.suffix(800))") }
        if let keep = ProcessInfo.processInfo.environment["GPT2_KEEP_PLOT_SCREENSHOT"] {   // to look at it
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: png, toPath: keep)
        }
        func pixels(_ x: Int, _ y: Int, _ w: Int, _ h: Int, _ colours: [String]) throws -> (Int, Int, [String: Int]) {
            let out = try runProcess(python, [TestPaths.reference.appendingPathComponent("png_pixels.py").path, png,
                                              "\(x)", "\(y)", "\(w)", "\(h)"] + colours)
            let j = try JSONSerialization.jsonObject(with: out.stdout) as? [String: Any] ?? [:]
            XCTAssertEqual(j["width"] as? Int, size.0, out.stderr)
            return (j["region"] as? Int ?? 0, j["non_white"] as? Int ?? 0, j["colors"] as? [String: Int] ?? [:])
        }
        // The loss plot area (SVGPlot's panel geometry), inset past the frame.
        let (area, ink, colours) = try pixels(95, 75, 570, 360, ["1f77b4", "ff7f0e", "d62728"])
        XCTAssertGreaterThan(Double(ink) / Double(area), 0.01, "loss panel nearly blank")
        XCTAssertGreaterThan(colours["1f77b4"] ?? 0, 500, "smoothed train curve (blue) not drawn: \(colours)")
        XCTAssertGreaterThan(colours["ff7f0e"] ?? 0, 100, "val curve (orange) not drawn: \(colours)")
        XCTAssertGreaterThan(colours["d62728"] ?? 0, 200, "GPT-2 baseline (red) not drawn: \(colours)")
        let (_, _, hella) = try pixels(700 + 95, 75, 570, 360, ["1f77b4", "d62728", "2ca02c"])
        for c in ["1f77b4", "d62728", "2ca02c"] { XCTAssertGreaterThan(hella[c] ?? 0, 100, "HellaSwag panel colour \(c): \(hella)") }
    }
}
