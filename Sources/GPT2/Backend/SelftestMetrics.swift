// The two error measures both self-checks (CPU bf16 and CUDA) report against the fp32 CPU engine.

enum SelftestMetrics {
    /// max |a − b| / max |b| over the tensor; NaN if any difference is NaN.
    static func maxRelativeError(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Float {
        precondition(a.count == b.count, "maxRelativeError: \(a.count) vs \(b.count) values")
        var maxDiff: Float = 0, maxRef: Float = 0
        for i in 0..<a.count {
            let d = abs(a[i] - b[i])
            if d.isNaN { return .nan }
            maxDiff = max(maxDiff, d)
            maxRef = max(maxRef, abs(b[i]))
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef
    }

    static func maxRelativeError(_ a: [Float], _ b: [Float]) -> Float {
        a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { maxRelativeError(x, $0) } }
    }

    /// ‖a − b‖₂ / ‖b‖₂ (in Double), for parameter updates, where Adam turns noise into ±lr steps
    /// and a max-element check would fail correct code.
    static func l2RelativeError(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "l2RelativeError: \(a.count) vs \(b.count) values")
        var num = 0.0, den = 0.0
        for i in 0..<a.count {
            let d = Double(a[i]) - Double(b[i])
            num += d * d
            den += Double(b[i]) * Double(b[i])
        }
        return den == 0 ? Float(num.squareRoot()) : Float((num / den).squareRoot())
    }
}
