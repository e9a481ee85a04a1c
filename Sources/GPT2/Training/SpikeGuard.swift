// llm.c's loss-spike guard (train_gpt2.cu -sl / -sg with its OutlierDetector): the z-score of the
// step's loss and gradient norm against the previous `window` steps; above the threshold the
// update is skipped (the weights stay as they were) and the step counts as skipped. z-scores are
// judged once 32 steps are in the window, so the fast early fall of the loss is not. A loss above
// twice ln(vocab) — twice what uniform guessing scores — is skipped at any step: no healthy run
// gets there after its first step. After `maxConsecutive` skips in a row the run stops: the
// model has diverged for good.
import Foundation

public struct SpikeGuardOptions: Codable, Equatable, Sendable {
    /// Skip the update when the loss z-score exceeds this (llm.c -sl); 0 turns it off.
    public var lossZ: Double = 6
    /// Skip the update when the gradient-norm z-score exceeds this (llm.c -sg); 0 turns it off.
    public var gradZ: Double = 0
    /// Steps in the moving window (llm.c: 128).
    public var window: Int = 128
    /// Consecutive skipped updates that stop the run.
    public var maxConsecutive: Int = 20
    public init() {}
}

/// Moving-window statistics of one series (llm.c OutlierDetector).
struct OutlierDetector: Codable, Equatable {
    let capacity: Int
    private(set) var values: [Double] = []
    private var next = 0

    init(capacity: Int) { self.capacity = capacity }

    /// The z-score of `x` against the window, or nil while it holds fewer than 32 values.
    func zScore(_ x: Double) -> Double? {
        guard values.count >= min(capacity, 32) else { return nil }
        let n = Double(values.count)
        let mean = values.reduce(0, +) / n
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        let sd = variance.squareRoot()
        return sd > 0 ? (x - mean) / sd : (x == mean ? 0 : .infinity)
    }

    mutating func add(_ x: Double) {
        if values.count < capacity { values.append(x) } else { values[next] = x }
        next = (next + 1) % capacity
    }
}

/// Decides, step by step, whether an update is taken. Saved in checkpoints so a resumed run
/// judges the same way.
public struct SpikeGuard: Codable, Equatable {
    public private(set) var options: SpikeGuardOptions
    private var loss: OutlierDetector
    private var grad: OutlierDetector
    /// Skipped updates in a row, up to now.
    public private(set) var consecutiveSkips = 0
    /// All skipped updates of the run.
    public private(set) var totalSkips = 0

    /// Losses above this are skipped at any step (2·ln(vocab)).
    public private(set) var lossCeiling: Double

    public init(options: SpikeGuardOptions, vocabSize: Int) {
        self.options = options
        lossCeiling = 2 * Foundation.log(Double(max(2, vocabSize)))
        loss = OutlierDetector(capacity: max(2, options.window))
        grad = OutlierDetector(capacity: max(2, options.window))
    }

    public enum Verdict: Equatable {
        case update
        /// Skip this update; `reason` says which z-score and its value.
        case skip(reason: String)
        /// Too many skips in a row: stop the run.
        case stop(reason: String)
    }

    /// Judges a step's (finite) loss and gradient norm and records them. A skipped step's values
    /// do not enter the window (a spike must not widen the band it is judged by).
    public mutating func judge(loss l: Double, gradNorm g: Double) -> Verdict {
        guard isEnabled else { return .update }
        var reasons: [String] = []
        if l > lossCeiling {
            reasons.append(String(format: "loss %.4g is above %.2f, twice the loss of uniform guessing", l, lossCeiling))
        } else if options.lossZ > 0, let z = loss.zScore(l), z > options.lossZ {
            reasons.append(String(format: "loss %.4g is %.1f standard deviations above the last %d steps (limit %g)", l, z, loss.capacity, options.lossZ))
        }
        if options.gradZ > 0, let z = grad.zScore(g), z > options.gradZ {
            reasons.append(String(format: "gradient norm %.4g is %.1f standard deviations above the last %d steps (limit %g)", g, z, grad.capacity, options.gradZ))
        }
        guard reasons.isEmpty else {
            consecutiveSkips += 1
            totalSkips += 1
            let reason = reasons.joined(separator: "; ")
            if consecutiveSkips >= options.maxConsecutive {
                return .stop(reason: "\(consecutiveSkips) updates in a row were skipped (\(reason))")
            }
            return .skip(reason: reason)
        }
        consecutiveSkips = 0
        loss.add(l)
        grad.add(g)
        return .update
    }

    /// This guard's history judged by `newOptions` (a resumed run may change the thresholds; a
    /// different window starts the history afresh).
    public func with(options newOptions: SpikeGuardOptions) -> SpikeGuard {
        guard newOptions.window == options.window else { return SpikeGuard(options: newOptions, vocabSize: 2).withCeiling(lossCeiling) }
        var g = self
        g.options = newOptions
        return g
    }

    private func withCeiling(_ c: Double) -> SpikeGuard {
        var g = self
        g.lossCeiling = c
        return g
    }

    /// Off when both thresholds are 0 (then the loss ceiling is not applied either).
    public var isEnabled: Bool { options.lossZ > 0 || options.gradZ > 0 }

    /// Whether the last judged step looked healthy (no skip pending).
    public var isSane: Bool { consecutiveSkips == 0 }
}
