// Scoring continuations of a shared context (HellaSwag's four endings of one context): the
// losses of each continuation's tokens given the context. Any engine can do it by scoring whole
// rows (`tokenLosses`), which is what hellaswag.py does; the CPU engine runs each context once
// and lets the endings attend over its cached keys and values instead (about half the tokens).
import Foundation

/// A context and the continuations to score after it.
public struct ContinuationItem: Equatable, Sendable {
    public var context: [Int32]
    public var continuations: [[Int32]]
    public init(context: [Int32], continuations: [[Int32]]) {
        self.context = context
        self.continuations = continuations
    }
}

extension InferenceEngine {
    public func continuationLosses(_ items: [ContinuationItem], maxTokensPerCall: Int) throws -> [[[Float]]] {
        try continuationLossesByRows(items, maxTokensPerCall: maxTokensPerCall)
    }

    /// Checks items for `continuationLosses`: a context of at least one token, continuations of at
    /// least one, every context + continuation within the context window (count ≤ maxSeqLen + 1).
    public func checkContinuations(_ items: [ContinuationItem]) throws {
        for (i, item) in items.enumerated() {
            guard !item.context.isEmpty, !item.continuations.isEmpty, item.continuations.allSatisfy({ !$0.isEmpty }) else {
                throw InferenceError.badShape("continuation item \(i): needs a context and non-empty continuations")
            }
            for c in item.continuations where item.context.count + c.count > config.maxSeqLen + 1 {
                throw InferenceError.tooLong(T: item.context.count + c.count - 1, maxSeqLen: config.maxSeqLen)
            }
            try checkTokens(item.context)
            for c in item.continuations { try checkTokens(c) }
        }
    }

    /// Continuation losses by whole rows (context + continuation), packed into `tokenLosses` calls
    /// of at most `maxTokensPerCall` B·T (at least one item per call): hellaswag.py's method.
    public func continuationLossesByRows(_ items: [ContinuationItem], maxTokensPerCall: Int) throws -> [[[Float]]] {
        try checkContinuations(items)
        var out: [[[Float]]] = []
        var start = 0
        while start < items.count {
            var end = start, T = 0, rows = 0
            while end < items.count {
                let item = items[end]
                let t = max(T, item.continuations.map { item.context.count + $0.count - 1 }.max()!)
                if end > start && (rows + item.continuations.count) * t > maxTokensPerCall { break }
                T = t
                rows += item.continuations.count
                end += 1
            }
            var inputs = [Int32](repeating: 0, count: rows * T)      // padding: token 0, not scored
            var targets = [Int32](repeating: -1, count: rows * T)    // -1: not scored (context and padding)
            var b = 0
            for item in items[start..<end] {
                for c in item.continuations {
                    let row = item.context + c
                    for t in 0..<row.count - 1 {
                        inputs[b * T + t] = row[t]
                        if t >= item.context.count - 1 { targets[b * T + t] = row[t + 1] }
                    }
                    b += 1
                }
            }
            let losses = try tokenLosses(inputs: inputs, targets: targets, B: rows, T: T)
            b = 0
            for item in items[start..<end] {
                var perItem: [[Float]] = []
                for c in item.continuations {
                    let first = b * T + item.context.count - 1
                    perItem.append(Array(losses[first..<first + c.count]))
                    b += 1
                }
                out.append(perItem)
            }
            start = end
        }
        return out
    }
}
