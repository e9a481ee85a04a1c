// One panel of an SVG plot: the plot area, its axes (round ticks, a light grid, labels), and the
// marks drawn in it (polylines clipped to the area, markers, reference lines, a legend).
// Plain SVG 1.1 text, so every browser and `rsvg-convert` shows it the same way.
import Foundation

/// A legend row: a line sample (solid, dashed, faint) with optional marker, and its text.
struct LegendEntry {
    var text: String
    var color: String
    var dashed = false
    var marker = false
    var width = 2.0
}

/// The geometry and axes of one panel; methods return SVG fragments.
struct SVGPanel {
    /// Plot area (inside the axes), in SVG pixels.
    let left: Double, top: Double, width: Double, height: Double
    let xRange: ClosedRange<Double>
    let yRange: ClosedRange<Double>
    let logY: Bool
    /// Unique within the document (clip path id).
    let id: String

    var right: Double { left + width }
    var bottom: Double { top + height }

    func x(_ v: Double) -> Double {
        left + width * (v - xRange.lowerBound) / max(1e-300, xRange.upperBound - xRange.lowerBound)
    }

    func y(_ v: Double) -> Double {
        if logY {
            let lo = log10(yRange.lowerBound), hi = log10(yRange.upperBound)
            let t = v > 0 ? (log10(v) - lo) / (hi - lo) : -1
            return bottom - height * t
        }
        return bottom - height * (v - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound)
    }

    /// Grid, ticks, tick labels, axis labels, the frame and the clip path of the plot area.
    func axes(title: String, xLabel: String, yLabel: String) -> String {
        var s = "<g class=\"panel\" data-label=\"\(svgEscape(yLabel))\">\n"
        s += "<clipPath id=\"\(id)-clip\"><rect x=\"\(svgNum(left))\" y=\"\(svgNum(top))\" width=\"\(svgNum(width))\" height=\"\(svgNum(height))\"/></clipPath>\n"
        s += "<text x=\"\(svgNum(left + width / 2))\" y=\"\(svgNum(top - 10))\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">\(svgEscape(title))</text>\n"
        // x ticks: round steps, about one per 110 px
        let xTicks = PlotScale.ticks(lo: xRange.lowerBound, hi: xRange.upperBound, target: max(2, Int(width / 110)))
        let xStep = xTicks.count > 1 ? xTicks[1] - xTicks[0] : 1
        for t in xTicks {
            s += "<line class=\"grid\" x1=\"\(svgNum(x(t)))\" x2=\"\(svgNum(x(t)))\" y1=\"\(svgNum(top))\" y2=\"\(svgNum(bottom))\" stroke=\"#e6e6e6\"/>\n"
            s += "<text class=\"xtick\" x=\"\(svgNum(x(t)))\" y=\"\(svgNum(bottom + 16))\" text-anchor=\"middle\">\(PlotScale.label(t, step: xStep))</text>\n"
        }
        // y ticks; values below 0.01 are written as multiples of a power of ten shown in the label
        let yTicks = logY ? PlotScale.logTicks(lo: yRange.lowerBound, hi: yRange.upperBound)
                          : PlotScale.ticks(lo: yRange.lowerBound, hi: yRange.upperBound, target: max(3, Int(height / 60)))
        let maxAbs = max(abs(yRange.lowerBound), abs(yRange.upperBound))
        let exponent = !logY && maxAbs > 0 && maxAbs < 0.01 ? Int(floor(log10(maxAbs))) : 0
        let unit = pow(10, Double(exponent))
        let yStep = yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1
        for t in yTicks {
            let text = logY ? logLabel(t) : PlotScale.label(t / unit, step: yStep / unit)
            s += "<line class=\"grid\" x1=\"\(svgNum(left))\" x2=\"\(svgNum(right))\" y1=\"\(svgNum(y(t)))\" y2=\"\(svgNum(y(t)))\" stroke=\"#e6e6e6\"/>\n"
            s += "<text class=\"ytick\" x=\"\(svgNum(left - 6))\" y=\"\(svgNum(y(t) + 4))\" text-anchor=\"end\">\(text)</text>\n"
        }
        let yTitle = exponent == 0 ? yLabel : "\(yLabel) (×1e\(exponent))"
        s += "<rect x=\"\(svgNum(left))\" y=\"\(svgNum(top))\" width=\"\(svgNum(width))\" height=\"\(svgNum(height))\" fill=\"none\" stroke=\"#888\"/>\n"
        s += "<text x=\"\(svgNum(left + width / 2))\" y=\"\(svgNum(bottom + 34))\" text-anchor=\"middle\">\(svgEscape(xLabel))</text>\n"
        let ly = top + height / 2, lx = left - 50
        s += "<text x=\"\(svgNum(lx))\" y=\"\(svgNum(ly))\" text-anchor=\"middle\" transform=\"rotate(-90 \(svgNum(lx)) \(svgNum(ly)))\">\(svgEscape(yTitle))</text>\n"
        return s
    }

    /// Closes the group opened by `axes`.
    var end: String { "</g>\n" }

    /// A polyline through (x, y) data points, clipped to the plot area. Long series are thinned to
    /// the first, lowest, highest and last point of each half-pixel column (the envelope stays).
    func polyline(_ points: [(Double, Double)], color: String, width lineWidth: Double = 1.5, opacity: Double = 1,
                  dashed: Bool = false, series: String, role: String) -> String {
        let pts = thinned(points.filter { $0.1.isFinite && (!logY || $0.1 > 0) })
        guard !pts.isEmpty else { return "" }
        let path = pts.map { "\(svgNum(x($0.0))),\(svgNum(y($0.1)))" }.joined(separator: " ")
        return "<polyline class=\"series\" data-series=\"\(svgEscape(series))\" data-role=\"\(role)\" data-points=\"\(points.count)\""
            + " clip-path=\"url(#\(id)-clip)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(lineWidth)\""
            + (opacity < 1 ? " stroke-opacity=\"\(opacity)\"" : "") + (dashed ? " stroke-dasharray=\"6 4\"" : "")
            + " stroke-linejoin=\"round\" points=\"\(path)\"/>\n"
    }

    /// Round markers at the points inside the plot area.
    func markers(_ points: [(Double, Double)], color: String, radius: Double = 3) -> String {
        var s = ""
        for p in points where p.1.isFinite && (!logY || p.1 > 0) {
            let px = x(p.0), py = y(p.1)
            guard py >= top - 0.5 && py <= bottom + 0.5 else { continue }
            s += "<circle cx=\"\(svgNum(px))\" cy=\"\(svgNum(py))\" r=\"\(radius)\" fill=\"\(color)\" stroke=\"white\" stroke-width=\"0.8\"/>\n"
        }
        return s
    }

    /// A dashed horizontal reference line across the plot area.
    func referenceLine(_ value: Double, color: String, series: String) -> String {
        guard value >= yRange.lowerBound && value <= yRange.upperBound else { return "" }
        return "<line class=\"reference\" data-series=\"\(svgEscape(series))\" x1=\"\(svgNum(left))\" x2=\"\(svgNum(right))\" y1=\"\(svgNum(y(value)))\" y2=\"\(svgNum(y(value)))\" stroke=\"\(color)\" stroke-width=\"1.5\" stroke-dasharray=\"7 4\"/>\n"
    }

    /// A dotted vertical marker with a label at its top.
    func verticalMarker(_ value: Double, label: String) -> String {
        let px = x(value)
        return "<line class=\"marker\" x1=\"\(svgNum(px))\" x2=\"\(svgNum(px))\" y1=\"\(svgNum(top))\" y2=\"\(svgNum(bottom))\" stroke=\"#777\" stroke-dasharray=\"2 3\"/>\n"
            + "<text x=\"\(svgNum(px + 4))\" y=\"\(svgNum(top + 14))\" fill=\"#555\">\(svgEscape(label))</text>\n"
    }

    /// A small grey note just above the top-left corner of the plot area.
    func note(_ text: String) -> String {
        "<text class=\"note\" x=\"\(svgNum(left))\" y=\"\(svgNum(top - 5))\" fill=\"#666\" font-size=\"11\">\(svgEscape(text))</text>\n"
    }

    /// The legend in the top-right corner, on a white box so curves under it stay readable.
    func legend(_ entries: [LegendEntry]) -> String {
        guard !entries.isEmpty else { return "" }
        let textWidth = Double(entries.map(\.text.count).max() ?? 0) * 6.6
        let w = textWidth + 44, h = Double(entries.count) * 17 + 8
        let x0 = right - w - 8, y0 = top + 8
        var s = "<g class=\"legend\">\n<rect x=\"\(svgNum(x0))\" y=\"\(svgNum(y0))\" width=\"\(svgNum(w))\" height=\"\(svgNum(h))\" fill=\"white\" fill-opacity=\"0.88\" stroke=\"#ccc\" rx=\"3\"/>\n"
        for (i, e) in entries.enumerated() {
            let ly = y0 + 16 + Double(i) * 17
            s += "<line x1=\"\(svgNum(x0 + 8))\" x2=\"\(svgNum(x0 + 32))\" y1=\"\(svgNum(ly - 4))\" y2=\"\(svgNum(ly - 4))\" stroke=\"\(e.color)\" stroke-width=\"\(e.width)\"\(e.dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            if e.marker { s += "<circle cx=\"\(svgNum(x0 + 20))\" cy=\"\(svgNum(ly - 4))\" r=\"3\" fill=\"\(e.color)\"/>\n" }
            s += "<text x=\"\(svgNum(x0 + 38))\" y=\"\(svgNum(ly))\">\(svgEscape(e.text))</text>\n"
        }
        return s + "</g>\n"
    }

    private func thinned(_ points: [(Double, Double)]) -> [(Double, Double)] {
        let columns = Int(width * 2)
        guard points.count > 2 * columns else { return points }
        var out: [(Double, Double)] = []
        var i = 0
        while i < points.count {
            let column = Int((x(points[i].0) - left) * 2)
            var j = i, lo = i, hi = i
            while j < points.count && Int((x(points[j].0) - left) * 2) == column {
                if points[j].1 < points[lo].1 { lo = j }
                if points[j].1 > points[hi].1 { hi = j }
                j += 1
            }
            for k in Set([i, lo, hi, j - 1]).sorted() { out.append(points[k]) }
            i = j
        }
        return out
    }

    private func logLabel(_ v: Double) -> String {
        let s = String(format: "%g", v)
        return s.contains("e") ? String(format: "%.0e", v).replacingOccurrences(of: "e-0", with: "e-").replacingOccurrences(of: "e+0", with: "e") : s
    }
}

/// Coordinates with one decimal: enough for screen pixels, short files.
func svgNum(_ x: Double) -> String { String(format: "%.1f", x) }

/// Text and attribute values escaped for XML.
func svgEscape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}
