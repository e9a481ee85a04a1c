// Axis arithmetic for the SVG plots: round ticks (steps of 1, 2 or 5 × 10^k), tick labels, the
// y range of a loss curve (after the initial transient, from quantiles), logarithmic ticks, and
// TensorBoard's smoothing (a debiased exponential moving average, as its scalar dashboard draws).
import Foundation

/// Ticks, ranges and smoothing for `SVGPlot`.
public enum PlotScale {
    /// The tick spacing of 1, 2 or 5 × 10^k that splits `span` into about `target` intervals.
    public static func niceStep(span: Double, target: Int = 6) -> Double {
        guard span > 0, span.isFinite else { return 1 }
        let raw = span / Double(max(1, target))
        let magnitude = pow(10, floor(log10(raw)))
        let r = raw / magnitude
        let mantissa: Double = r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10
        return mantissa * magnitude
    }

    /// The multiples of `niceStep(span:target:)` inside `lo...hi`, in increasing order.
    public static func ticks(lo: Double, hi: Double, target: Int = 6) -> [Double] {
        guard lo.isFinite, hi.isFinite, hi > lo else { return lo.isFinite ? [lo] : [] }
        let step = niceStep(span: hi - lo, target: target)
        let first = (lo / step - 1e-9).rounded(.up), last = (hi / step + 1e-9).rounded(.down)
        guard first <= last else { return [] }
        // k · step (not repeated addition) keeps values like 0.3 exact to the label's precision.
        return stride(from: first, through: last, by: 1).map { $0 * step }
    }

    /// Ticks for a logarithmic axis over `lo...hi` (both > 0): 1-2-5 × 10^k when the range spans
    /// a decade or more (only powers of ten past five decades), else round linear ticks, which a
    /// log axis spaces unevenly.
    public static func logTicks(lo: Double, hi: Double) -> [Double] {
        guard lo > 0, hi > lo, lo.isFinite, hi.isFinite else { return [] }
        let decades = log10(hi) - log10(lo)
        if decades < 1 { return ticks(lo: lo, hi: hi, target: 5) }
        let mantissas: [Double] = decades > 5 ? [1] : [1, 2, 5]
        var out: [Double] = []
        for e in Int(floor(log10(lo)))...Int(ceil(log10(hi))) {
            for m in mantissas {
                let v = m * pow(10, Double(e))
                if v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) { out.append(v) }
            }
        }
        return out
    }

    /// A tick label with as many decimals as the spacing needs: "2.5" (step 0.5), "300" (step 100),
    /// "0.0006" (step 1e-4). Values that round to zero print "0".
    public static func label(_ value: Double, step: Double) -> String {
        let decimals = step > 0 ? max(0, Int((-log10(step) - 1e-9).rounded(.up))) : 0
        let s = String(format: "%.\(min(decimals, 12))f", value)
        return s.hasPrefix("-") && Double(s) == 0 ? String(s.dropFirst()) : s
    }

    /// The `q` quantile (0...1) of `sorted` by linear interpolation (numpy's default).
    public static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        precondition(!sorted.isEmpty, "quantile of an empty array")
        let pos = q * Double(sorted.count - 1)
        let i = Int(pos.rounded(.down)), frac = pos - Double(i)
        return i + 1 < sorted.count ? sorted[i] + frac * (sorted[i + 1] - sorted[i]) : sorted[i]
    }

    /// The y range of a loss panel. On runs of 50 steps or more, the first `transient` fraction
    /// of the steps (the drop from ln(vocab) ≈ 10.8) is left out so it does not squash the rest:
    /// the range spans the later train losses from their minimum to their 99% quantile (upward
    /// spikes are common, downward ones rare), every later val loss and the `references`, plus a
    /// 5% margin (multiplicative on a log axis). Shorter runs, or runs with no later points, show
    /// every point.
    public static func lossRange(train: [(Int, Double)], val: [(Int, Double)], references: [Double],
                                 transient: Double = 0.05, logScale: Bool = false) -> ClosedRange<Double> {
        let maxStep = (train + val).map(\.0).max() ?? 0
        let cut = train.count >= 50 ? Double(maxStep) * transient : 0
        func later(_ s: [(Int, Double)]) -> [Double] {
            let v = s.filter { Double($0.0) >= cut && $0.1.isFinite }.map(\.1)
            return v.isEmpty ? s.map(\.1).filter(\.isFinite) : v
        }
        let t = later(train).sorted(), v = later(val)
        var values = v + references.filter(\.isFinite)
        if !t.isEmpty { values += [t[0], cut > 0 ? quantile(t, 0.99) : t[t.count - 1]] }
        if logScale { values = values.filter { $0 > 0 } }
        guard var lo = values.min(), var hi = values.max() else { return logScale ? 1...10 : 0...1 }
        if logScale {
            if hi / lo < 1.01 { lo /= 1.05; hi *= 1.05 }
            let pad = pow(hi / lo, 0.05)
            return (lo / pad)...(hi * pad)
        }
        if hi - lo < 1e-9 * max(1, abs(hi)) { lo -= 0.5; hi += 0.5 }
        let pad = (hi - lo) * 0.05
        return (lo - pad)...(hi + pad)
    }

    /// TensorBoard's smoothing of a scalar series: an exponential moving average with weight
    /// `weight` (0 = none, TensorBoard's slider), debiased so the first points are not pulled
    /// towards zero. Non-finite values are passed through and do not enter the average.
    public static func smoothed(_ values: [Double], weight: Double) -> [Double] {
        guard weight > 0 else { return values }
        var last = 0.0, count = 0.0
        return values.map { v in
            guard v.isFinite else { return v }
            last = last * weight + (1 - weight) * v
            count += 1
            return last / (1 - pow(weight, count))
        }
    }

    /// A smoothing weight for `count` points: an averaging span of about 2% of the run (no
    /// smoothing below 50 points, at most TensorBoard's slider maximum 0.999).
    public static func defaultSmoothing(count: Int) -> Double {
        let span = Double(count) / 50
        return span < 1 ? 0 : min(0.999, 1 - 1 / span)
    }
}
