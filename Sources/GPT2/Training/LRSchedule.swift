// Learning rate: linear warmup, then cosine decay to min, then constant — build-nanogpt's get_lr:
// https://github.com/karpathy/build-nanogpt/blob/master/train_gpt2.py

public struct LRSchedule: Codable, Equatable, Sendable {
    public var maxLR: Double
    public var minLR: Double
    public var warmupSteps: Int
    public var maxSteps: Int

    public init(maxLR: Double, minLR: Double, warmupSteps: Int, maxSteps: Int) {
        self.maxLR = maxLR
        self.minLR = minLR
        self.warmupSteps = warmupSteps
        self.maxSteps = maxSteps
    }

    /// The learning rate at step `it` (0-based), computed in Double as Python does.
    public func callAsFunction(_ it: Int) -> Double {
        if it < warmupSteps { return maxLR * Double(it + 1) / Double(warmupSteps) }
        if it > maxSteps { return minLR }
        let decayRatio = Double(it - warmupSteps) / Double(maxSteps - warmupSteps)
        let coeff = 0.5 * (1.0 + cos(Double.pi * decayRatio))
        return minLR + coeff * (maxLR - minLR)
    }
}

import Foundation
