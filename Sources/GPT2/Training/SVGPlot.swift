// `gpt plot`: loss curves of one or more runs (log.txt series) and HellaSwag accuracy as SVG.
// The train loss is drawn faint and raw under TensorBoard's smoothing; the y range starts after the
// initial transient; baselines appear only where they mean something (the FineWeb-Edu val loss of
// OpenAI's GPT-2 124M only for FineWeb-Edu runs; HellaSwag GPT-2/GPT-3 124M whenever HellaSwag was
// logged), as build-nanogpt's play.ipynb draws them. Also the learning-rate schedule.
import Foundation

/// One run's log.txt series (`RunLog.read`) and the name its legend shows.
public struct PlotRun {
    public var name: String
    /// kind ("train", "val", "hella") → [(step, value)] in file order.
    public var series: [String: [(Int, Double)]]

    public init(name: String, series: [String: [(Int, Double)]]) {
        self.name = name
        self.series = series
    }
}

/// How to draw a loss plot.
public struct PlotOptions {
    public var title: String
    /// Val-loss baselines of this dataset are drawn; nil: none (unknown or user data).
    public var dataset: ReferenceDataset?
    /// Logarithmic loss axis.
    public var logY: Bool
    /// Smoothing weight of the train loss (0...<1, TensorBoard's slider); nil picks one from the run length.
    public var smoothing: Double?

    public init(title: String, dataset: ReferenceDataset? = nil, logY: Bool = false, smoothing: Double? = nil) {
        self.title = title
        self.dataset = dataset
        self.logY = logY
        self.smoothing = smoothing
    }
}

public enum SVGPlot {
    static let panelWidth = 680.0, panelHeight = 430.0
    /// matplotlib's tab10 without red and green, which the baselines use.
    static let runColors = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
    static let baselineColors = ["#d62728", "#2ca02c"]

    /// An SVG document for one run's series (`RunLog.read`).
    public static func render(_ series: [String: [(Int, Double)]], title: String,
                              dataset: ReferenceDataset? = nil, logY: Bool = false) -> String {
        render(runs: [PlotRun(name: "", series: series)], options: PlotOptions(title: title, dataset: dataset, logY: logY))
    }

    /// An SVG document overlaying `runs`: a loss panel (smoothed train over faint raw train, val
    /// with markers) and, when any run logged HellaSwag, an accuracy panel beside it.
    public static func render(runs: [PlotRun], options: PlotOptions) -> String {
        let hasHella = runs.contains { !($0.series["hella"] ?? []).isEmpty }
        let maxStep = max(1, runs.flatMap { $0.series.values.flatMap { $0.map(\.0) } }.max() ?? 1)
        var svg = document(width: (hasHella ? 2 : 1) * (panelWidth + 20) + 20, height: panelHeight + 60, title: options.title)
        svg += lossPanel(runs, options: options, maxStep: maxStep)
        if hasHella { svg += hellaPanel(runs, maxStep: maxStep) }
        return svg + "</svg>\n"
    }

    /// An SVG document of the learning rate at each step of `schedule` (build-nanogpt's get_lr).
    public static func renderSchedule(_ schedule: LRSchedule, title: String) -> String {
        let last = max(1, schedule.maxSteps)
        let stride = max(1, last / 4000)   // enough points for any screen
        var points = Swift.stride(from: 0, through: last, by: stride).map { (Double($0), schedule($0)) }
        if points.last?.0 != Double(last) { points.append((Double(last), schedule(last))) }
        if schedule.warmupSteps > 0 && schedule.warmupSteps <= last {
            points.append((Double(schedule.warmupSteps), schedule(schedule.warmupSteps)))
            points.sort { $0.0 < $1.0 }
        }
        let hi = max(schedule.maxLR, schedule.minLR, 1e-12)
        let panel = SVGPanel(left: 90, top: 70, width: panelWidth - 100, height: panelHeight - 60,
                             xRange: 0...Double(last), yRange: 0...(hi * 1.08), logY: false, id: "lr")
        var s = document(width: panelWidth + 20, height: panelHeight + 60, title: title)
        s += panel.axes(title: "learning rate schedule", xLabel: "step", yLabel: "learning rate")
        s += panel.referenceLine(schedule.minLR, color: "#999", series: "min lr")
        s += panel.polyline(points, color: runColors[0], width: 2, series: "learning rate", role: "schedule")
        if schedule.warmupSteps > 0 && schedule.warmupSteps < last {
            s += panel.verticalMarker(Double(schedule.warmupSteps), label: "warmup ends (step \(schedule.warmupSteps))")
        }
        s += panel.legend([
            LegendEntry(text: "lr: max \(sci(schedule.maxLR)), min \(sci(schedule.minLR))", color: runColors[0]),
            LegendEntry(text: "warmup \(schedule.warmupSteps), cosine to step \(schedule.maxSteps)", color: "#999", dashed: true, width: 1.5),
        ])
        return s + panel.end + "</svg>\n"
    }

    // MARK: - Panels

    private static func lossPanel(_ runs: [PlotRun], options: PlotOptions, maxStep: Int) -> String {
        let single = runs.count == 1
        let baselines = options.dataset?.valLossLines ?? []
        let trains = runs.map { $0.series["train"] ?? [] }, vals = runs.map { $0.series["val"] ?? [] }
        let range = PlotScale.lossRange(train: trains.flatMap { $0 }, val: vals.flatMap { $0 },
                                        references: baselines.map(\.value), logScale: options.logY)
        let panel = SVGPanel(left: 90, top: 70, width: panelWidth - 100, height: panelHeight - 60,
                             xRange: 0...Double(maxStep), yRange: range, logY: options.logY, id: "loss")
        var s = panel.axes(title: "loss", xLabel: "step", yLabel: options.logY ? "loss (log scale)" : "loss")
        var legend: [LegendEntry] = []
        for (i, b) in baselines.enumerated() {
            let color = baselineColors[i % baselineColors.count]
            s += panel.referenceLine(b.value, color: color, series: b.label)
            legend.append(LegendEntry(text: "\(b.label) \(b.value)", color: color, dashed: true, width: 1.5))
        }
        var above: (Int, Double)?
        for (i, run) in runs.enumerated() {
            let color = runColors[i % runColors.count], valColor = single ? runColors[1] : color
            let train = trains[i], val = vals[i]
            let label = single ? "" : run.name + " "
            if !train.isEmpty {
                let weight = options.smoothing ?? PlotScale.defaultSmoothing(count: train.count)
                let smooth = PlotScale.smoothed(train.map(\.1), weight: weight)
                let raw = train.map { (Double($0.0), $0.1) }
                if weight > 0 {
                    s += panel.polyline(raw, color: color, width: 1, opacity: single ? 0.3 : 0.18, series: label + "train loss (raw)", role: "raw")
                }
                s += panel.polyline(zip(raw, smooth).map { ($0.0.0, $0.1) }, color: color, width: 2,
                                    series: label + "train loss", role: "smoothed")
                let last = smooth.last(where: \.isFinite) ?? .nan
                let how = weight > 0 ? "smoothed \(String(format: "%.3g", weight))" : "not smoothed"
                legend.append(LegendEntry(text: "\(label)train (\(how)), last \(String(format: "%.4f", last))", color: color))
            }
            if !val.isEmpty {
                let pts = val.map { (Double($0.0), $0.1) }
                s += panel.polyline(pts, color: valColor, width: 1.5, dashed: !single, series: label + "val loss", role: "val")
                s += panel.markers(pts, color: valColor)
                legend.append(LegendEntry(text: "\(label)val, last \(String(format: "%.4f", val.last!.1))", color: valColor, dashed: !single, marker: true))
            }
            for p in train + val where p.1.isFinite && p.1 > range.upperBound && p.1 > (above?.1 ?? -.infinity) { above = p }
        }
        if let above {
            s += panel.note("↑ off scale: \(String(format: "%.3f", above.1)) at step \(above.0)")
        }
        return s + panel.legend(legend) + panel.end
    }

    private static func hellaPanel(_ runs: [PlotRun], maxStep: Int) -> String {
        let baselines = ReferenceDataset.hellaSwagLines
        let values = runs.flatMap { ($0.series["hella"] ?? []).map(\.1) } + baselines.map(\.value)
        var lo = values.min()!, hi = values.max()!
        if hi - lo < 0.02 { lo -= 0.01; hi += 0.01 }
        let pad = (hi - lo) * 0.08
        let panel = SVGPanel(left: panelWidth + 20 + 90, top: 70, width: panelWidth - 100, height: panelHeight - 60,
                             xRange: 0...Double(maxStep), yRange: (lo - pad)...(hi + pad), logY: false, id: "hella")
        var s = panel.axes(title: "HellaSwag", xLabel: "step", yLabel: "acc_norm")
        var legend: [LegendEntry] = []
        for (i, b) in baselines.enumerated() {
            let color = baselineColors[i % baselineColors.count]
            s += panel.referenceLine(b.value, color: color, series: b.label)
            legend.append(LegendEntry(text: "\(b.label) \(b.value)", color: color, dashed: true, width: 1.5))
        }
        for (i, run) in runs.enumerated() {
            guard let hella = run.series["hella"], !hella.isEmpty else { continue }
            let color = runColors[i % runColors.count]
            let pts = hella.map { (Double($0.0), $0.1) }
            let name = runs.count == 1 ? "HellaSwag" : run.name + " HellaSwag"
            s += panel.polyline(pts, color: color, width: 1.5, series: name, role: "hella")
            s += panel.markers(pts, color: color)
            legend.append(LegendEntry(text: "\(name), last \(String(format: "%.4f", hella.last!.1))", color: color, marker: true))
        }
        return s + panel.legend(legend) + panel.end
    }

    // MARK: - Document

    private static func document(width: Double, height: Double, title: String) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12" fill="#222">
        <title>\(svgEscape(title))</title>
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(svgNum(width / 2))" y="26" text-anchor="middle" font-size="16">\(svgEscape(title))</text>

        """
    }

    /// 6e-4, 6.5e-5, 0.001 -> "6e-4", "6.5e-5", "0.001".
    private static func sci(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1e-3 && abs(v) < 1e4 { return String(format: "%g", v) }
        let e = Int(floor(log10(abs(v))))
        var m = String(format: "%.3f", v / pow(10, Double(e)))
        while m.hasSuffix("0") { m.removeLast() }
        if m.hasSuffix(".") { m.removeLast() }
        return "\(m)e\(e)"
    }
}
