// `gpt plot`: the loss curves (and HellaSwag accuracy when logged) of a run as an SVG written by
// hand, with the reference lines of build-nanogpt's play.ipynb: OpenAI GPT-2 124M val loss
// 3.2924 and HellaSwag 0.2945, GPT-3 124M HellaSwag 0.337.
import Foundation

public enum SVGPlot {
    public static let gpt2ValLoss = 3.2924
    public static let gpt2Hella = 0.2945
    public static let gpt3Hella = 0.337

    /// An SVG document for the series of a log.txt (`RunLog.read`).
    public static func render(_ series: [String: [(Int, Double)]], title: String) -> String {
        let hella = series["hella"] ?? []
        let panels = hella.isEmpty ? 1 : 2
        let pw = 660.0, ph = 400.0, W = pw * Double(panels) + 40
        var svg = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(W))" height="\(Int(ph + 60))" viewBox="0 0 \(Int(W)) \(Int(ph + 60))" font-family="sans-serif" font-size="12">
        <title>\(escape(title))</title>
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(W / 2)" y="20" text-anchor="middle" font-size="15">\(escape(title))</text>

        """
        let train = series["train"] ?? [], val = series["val"] ?? []
        svg += panel(x0: 20, y0: 40, w: pw, h: ph, label: "loss",
                     lines: [("train loss", train, "#1f77b4", false), ("val loss", val, "#ff7f0e", true)],
                     references: [("OpenAI GPT-2 (124M) checkpoint val loss", gpt2ValLoss, "#d62728")], floorZero: false)
        if !hella.isEmpty {
            svg += panel(x0: 20 + pw, y0: 40, w: pw, h: ph, label: "HellaSwag accuracy",
                         lines: [("HellaSwag", hella, "#2ca02c", true)],
                         references: [("OpenAI GPT-2 (124M)", gpt2Hella, "#d62728"), ("OpenAI GPT-3 (124M)", gpt3Hella, "#9467bd")],
                         floorZero: false)
        }
        return svg + "</svg>\n"
    }

    private static func panel(x0: Double, y0: Double, w: Double, h: Double, label: String,
                              lines: [(String, [(Int, Double)], String, Bool)],
                              references: [(String, Double, String)], floorZero: Bool) -> String {
        let left = x0 + 55, right = x0 + w - 15, top = y0 + 10, bottom = y0 + h - 35
        let points = lines.flatMap { $0.1 }
        let maxStep = max(1, points.map { $0.0 }.max() ?? 1)
        var lo = (points.map { $0.1 } + references.map { $0.1 }).min() ?? 0
        var hi = (points.map { $0.1 } + references.map { $0.1 }).max() ?? 1
        if floorZero { lo = 0 }
        if hi - lo < 1e-9 { hi += 0.5; lo -= 0.5 }
        let pad = (hi - lo) * 0.05
        lo -= pad; hi += pad
        func X(_ s: Int) -> Double { left + (right - left) * Double(s) / Double(maxStep) }
        func Y(_ v: Double) -> Double { bottom - (bottom - top) * (v - lo) / (hi - lo) }
        var s = "<g class=\"panel\" data-label=\"\(escape(label))\">\n"
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(right - left))\" height=\"\(f(bottom - top))\" fill=\"none\" stroke=\"#888\"/>\n"
        for k in 0...4 {   // ticks
            let v = lo + (hi - lo) * Double(k) / 4, st = Int(Double(maxStep) * Double(k) / 4)
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(Y(v) + 4))\" text-anchor=\"end\">\(String(format: "%.3g", v))</text>\n"
            s += "<text x=\"\(f(X(st)))\" y=\"\(f(bottom + 16))\" text-anchor=\"middle\">\(st)</text>\n"
        }
        s += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 32))\" text-anchor=\"middle\">step</text>\n"
        s += "<text x=\"\(f(x0 + 14))\" y=\"\(f((top + bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 \(f(x0 + 14)) \(f((top + bottom) / 2)))\">\(escape(label))</text>\n"
        var legend: [(String, String, Bool)] = []
        for (name, v, color) in references {
            s += "<line class=\"reference\" data-series=\"\(escape(name))\" x1=\"\(f(left))\" x2=\"\(f(right))\" y1=\"\(f(Y(v)))\" y2=\"\(f(Y(v)))\" stroke=\"\(color)\" stroke-dasharray=\"6 4\"/>\n"
            legend.append(("\(name) (\(v))", color, true))
        }
        for (name, pts, color, markers) in lines where !pts.isEmpty {
            let path = pts.map { "\(f(X($0.0))),\(f(Y($0.1)))" }.joined(separator: " ")
            s += "<polyline class=\"series\" data-series=\"\(escape(name))\" data-points=\"\(pts.count)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(path)\"/>\n"
            if markers { for p in pts { s += "<circle cx=\"\(f(X(p.0)))\" cy=\"\(f(Y(p.1)))\" r=\"2.5\" fill=\"\(color)\"/>\n" } }
            legend.append(("\(name) (last \(String(format: "%.4f", pts.last!.1)))", color, false))
        }
        for (i, (text, color, dashed)) in legend.enumerated() {
            let ly = top + 14 + Double(i) * 16
            s += "<line x1=\"\(f(right - 345))\" x2=\"\(f(right - 325))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            s += "<text x=\"\(f(right - 320))\" y=\"\(f(ly))\">\(escape(text))</text>\n"
        }
        return s + "</g>\n"
    }

    private static func f(_ x: Double) -> String { String(format: "%.1f", x) }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
