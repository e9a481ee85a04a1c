// `gpt eval loss`: the mean next-token cross-entropy of one long token sequence, scored in
// consecutive non-overlapping windows of the model's context (the first token of each window has
// no earlier context, as when the text is cut into training rows). Full windows are batched into
// one scoring call up to the engine's preferred size.
import Foundation

/// Mean cross-entropy of predicting ids[1...] from the ids before them.
/// - Parameters: progress: called with (predictions scored, predictions in all) after each call.
public func windowedLoss(engine: any InferenceEngine, ids: [Int32],
                         progress: ((Int, Int) -> Void)? = nil) throws -> Double {
    guard ids.count >= 2 else { throw InferenceError.badShape("need at least 2 tokens to score, got \(ids.count)") }
    try engine.checkTokens(ids)
    let T = engine.config.maxSeqLen, predictions = ids.count - 1
    var windows: [Range<Int>] = []   // prediction positions: window w predicts ids[r.lowerBound+1 ... r.upperBound]
    var start = 0
    while start < predictions {
        let n = min(T, predictions - start)
        windows.append(start..<start + n)
        start += n
    }
    var total = 0.0, done = 0, w = 0
    while w < windows.count {
        // Windows of equal length go together (all but possibly the last).
        let n = windows[w].count
        var rows = 1
        while w + rows < windows.count && windows[w + rows].count == n && (rows + 1) * n <= max(engine.preferredTokensPerCall, n) {
            rows += 1
        }
        var inputs: [Int32] = [], targets: [Int32] = []
        inputs.reserveCapacity(rows * n); targets.reserveCapacity(rows * n)
        for r in windows[w..<w + rows] {
            inputs += ids[r.lowerBound..<r.upperBound]
            targets += ids[r.lowerBound + 1...r.upperBound]
        }
        let losses = try engine.tokenLosses(inputs: inputs, targets: targets, B: rows, T: n)
        total += losses.reduce(0.0) { $0 + Double($1) }
        done += rows * n
        w += rows
        progress?(done, predictions)
    }
    return total / Double(predictions)
}
