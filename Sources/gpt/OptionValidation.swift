// Range checks for numeric command-line options, with messages that name the option.
// Declare every option that takes a number with `parsing: .unconditional`: ArgumentParser then
// reads "-5" in `--max-steps -5` as the value (by default it takes it for a flag and reports
// "Missing value"), and `validate()` rejects it here with the option's name and the value given.
// Example: `try NumberOption.check("--max-steps", maxSteps, atLeast: 1)` throws
// "--max-steps must be at least 1 (got -5)".
import ArgumentParser

/// Checks of numeric options for `validate()`; each throws a `ValidationError` naming the option
/// and the value. A nil value (an optional option not given) always passes.
enum NumberOption {
    /// An integer option must lie in `atLeast ... atMost`.
    /// - Parameters:
    ///   - name: the option as typed, e.g. "--max-steps" or "-B".
    ///   - value: the parsed value (nil: not given).
    ///   - atLeast: smallest accepted value.
    ///   - atMost: largest accepted value (bounds keep products such as B·T far from overflow).
    static func check<T: BinaryInteger>(_ name: String, _ value: T?, atLeast: T, atMost: T? = nil) throws {
        guard let value else { return }
        if let atMost, value < atLeast || value > atMost {
            throw ValidationError("\(name) must be between \(atLeast) and \(atMost) (got \(value))")
        }
        if value < atLeast { throw ValidationError("\(name) must be at least \(atLeast) (got \(value))") }
    }

    /// A real option must be finite and lie in the given bounds.
    /// - Parameters:
    ///   - name: the option as typed, e.g. "--max-lr".
    ///   - value: the parsed value (nil: not given). NaN and infinities are rejected.
    ///   - atLeast: smallest accepted value (inclusive).
    ///   - above: exclusive lower bound (e.g. 0 for a learning rate that must be positive).
    ///   - atMost: largest accepted value (inclusive).
    static func check<F: BinaryFloatingPoint>(_ name: String, _ value: F?, atLeast: F? = nil, above: F? = nil,
                                              atMost: F? = nil) throws where F: LosslessStringConvertible {
        guard let value else { return }
        guard value.isFinite else { throw ValidationError("\(name) must be a finite number (got \(value))") }
        if let above, !(value > above) { throw ValidationError("\(name) must be greater than \(above) (got \(value))") }
        if let atLeast, let atMost, value < atLeast || value > atMost {
            throw ValidationError("\(name) must be between \(atLeast) and \(atMost) (got \(value))")
        }
        if let atLeast, value < atLeast { throw ValidationError("\(name) must be at least \(atLeast) (got \(value))") }
        if let atMost, value > atMost { throw ValidationError("\(name) must be at most \(atMost) (got \(value))") }
    }
}

/// Upper bounds shared by several commands (far above any real use; they keep sizes such as
/// prompt + new tokens or B·T from overflowing and allocations from being absurd).
enum NumberLimit {
    /// Tokens in a sequence or a generation (GPT2ConfigField.maxSeqLen's bound).
    static let tokens = 1 << 20
    /// Samples or rows decoded together.
    static let batch = 1 << 12
    /// Threads, repetitions, steps of a benchmark.
    static let count = 1 << 16
}
