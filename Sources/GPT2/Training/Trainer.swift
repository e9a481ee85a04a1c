// One optimizer step, llm.c style: for each micro-step nextBatch → forward → backward (scaled so
// the accumulated gradient is the full-batch mean), then all-reduce (data parallel), clip, AdamW.
// Reference: build-nanogpt train_gpt2.py's training loop.
import Foundation

/// Hyperparameters of a run (saved in checkpoints).
public struct TrainOptions: Codable, Equatable, Sendable {
    public var B = 4
    public var T = 64
    public var totalBatch = 256
    public var maxSteps = 100
    public var maxLR = 6e-4
    public var minLRFrac = 0.1
    public var warmupSteps = 10
    public var weightDecay = 0.1
    public var gradClip = 1.0
    public var seed: UInt64 = 1337
    public var shuffle = false
    public var overfitBatch = false
    public init() {}

    public var schedule: LRSchedule {
        LRSchedule(maxLR: maxLR, minLR: maxLR * minLRFrac, warmupSteps: warmupSteps, maxSteps: maxSteps)
    }
}

public struct StepStats: Sendable {
    public var step: Int
    public var loss: Float
    public var lr: Double
    public var norm: Float
    public var seconds: Double
    public var tokens: Int
    public var tokensPerSecond: Double { Double(tokens) / seconds }
}

public enum TrainingError: LocalizedError, Equatable {
    case indivisibleBatch(total: Int, B: Int, T: Int, world: Int)
    case nonFinite(step: Int, what: String, value: Float)

    public var errorDescription: String? {
        switch self {
        case .indivisibleBatch(let total, let B, let T, let w):
            return "--total-batch \(total) is not divisible by B*T*world = \(B)*\(T)*\(w) = \(B * T * w)"
        case .nonFinite(let s, let what, let v):
            return "\(what) is \(v) at step \(s): training stopped before the update (lower --max-lr or check the data)"
        }
    }
}

/// Data-parallel hooks (MPI/NCCL); identity for one process. `MPIReducer` implements it.
public protocol GradientReducer: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }
    /// Replaces `values` with their mean over all ranks (gradients, losses).
    func averageInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) throws
    /// Replaces `values` with their sum over all ranks (counts such as HellaSwag's, exact in a
    /// Double up to 2^53; also a barrier, and a broadcast when every other rank sends 0).
    func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) throws
}

extension GradientReducer {
    /// Sums an array over all ranks.
    public func sum(_ values: [Double]) throws -> [Double] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try sumInPlace($0.baseAddress!, count: $0.count) }
        return v
    }
}

public final class Trainer {
    /// The model being trained (the CPU `GPT2` or a `CUDABackend`).
    public let engine: any TrainingEngine
    /// The engine as the CPU model; only for a Trainer made with `init(model:...)`.
    public var model: GPT2 {
        guard let m = engine as? GPT2 else { preconditionFailure("Trainer.model: the engine is not a GPT2; use engine.copyState(to:includeOptimizer:)") }
        return m
    }
    public let options: TrainOptions
    public let train: DataLoader
    public let val: DataLoader?
    public let gradAccumSteps: Int
    public let reducer: GradientReducer?
    /// Optimizer steps completed.
    public private(set) var step = 0

    private var inputs: [Int32] = []
    private var targets: [Int32] = []
    private var fixedBatch: ([Int32], [Int32])?

    /// Trains the CPU model `model`.
    public convenience init(model: GPT2, options: TrainOptions, train: DataLoader, val: DataLoader?, reducer: GradientReducer? = nil) throws {
        try self.init(engine: model, options: options, train: train, val: val, reducer: reducer)
    }

    /// Trains `engine`; `reducer` averages gradients and losses over data-parallel ranks.
    public init(engine: any TrainingEngine, options: TrainOptions, train: DataLoader, val: DataLoader?, reducer: GradientReducer? = nil) throws {
        let world = reducer?.worldSize ?? 1
        let perStep = options.B * options.T * world
        guard options.totalBatch % perStep == 0, options.totalBatch >= perStep else {
            throw TrainingError.indivisibleBatch(total: options.totalBatch, B: options.B, T: options.T, world: world)
        }
        self.engine = engine
        self.options = options
        self.train = train
        self.val = val
        self.reducer = reducer
        gradAccumSteps = options.totalBatch / perStep
    }

    /// One optimizer step over `totalBatch` tokens (all ranks together). Throws before updating
    /// the weights when the loss or the gradient norm is not finite.
    public func trainStep() throws -> StepStats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let B = options.B, T = options.T
        let model = engine
        try model.zeroGrad()
        var lossSum: Double = 0
        for _ in 0..<gradAccumSteps {
            if options.overfitBatch {
                if fixedBatch == nil { try train.next(inputs: &inputs, targets: &targets); fixedBatch = (inputs, targets) }
                (inputs, targets) = fixedBatch!
            } else {
                try train.next(inputs: &inputs, targets: &targets)
            }
            let loss = try model.forward(inputs: inputs, targets: targets, B: B, T: T)
            lossSum += Double(loss)
            try model.backward(lossScale: 1 / Float(gradAccumSteps))
        }
        var loss = Float(lossSum / Double(gradAccumSteps))
        if let reducer, reducer.worldSize > 1 {
            try model.averageGradients(over: reducer)
            try withUnsafeMutablePointer(to: &loss) { try reducer.averageInPlace($0, count: 1) }
        }
        guard loss.isFinite else { throw TrainingError.nonFinite(step: step, what: "the loss", value: loss) }
        let norm = try model.clipGradients(maxNorm: Float(options.gradClip))
        guard norm.isFinite else { throw TrainingError.nonFinite(step: step, what: "the gradient norm", value: norm) }
        let lr = options.schedule(step)
        try model.update(learningRate: Float(lr), weightDecay: Float(options.weightDecay), step: step + 1)
        step += 1
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return StepStats(step: step - 1, loss: loss, lr: lr, norm: norm, seconds: seconds,
                         tokens: options.totalBatch)
    }

    /// Mean validation loss over `steps` batches from the start of the validation split
    /// (averaged over ranks when data parallel).
    /// `progress(done, steps)` is called after each batch.
    public func validationLoss(steps: Int, progress: ((Int, Int) -> Void)? = nil) throws -> Float? {
        guard let val else { return nil }
        try val.reset()
        var sum: Double = 0
        var x: [Int32] = [], y: [Int32] = []
        for i in 0..<steps {
            try val.next(inputs: &x, targets: &y)
            let losses = try engine.tokenLosses(inputs: x, targets: y, B: val.B, T: val.T)
            sum += losses.reduce(0.0) { $0 + Double($1) } / Double(losses.count)
            progress?(i + 1, steps)
        }
        var loss = Float(sum / Double(steps))
        if let reducer, reducer.worldSize > 1 {
            try withUnsafeMutablePointer(to: &loss) { try reducer.averageInPlace($0, count: 1) }
        }
        return loss
    }

    // MARK: - Checkpoint state

    /// Everything besides the tensors that a resumed run needs.
    public struct State: Codable, Equatable {
        public var step: Int
        public var data: DataPosition
        public var options: TrainOptions
        public var worldSize: Int
    }

    /// The state to save; `data` is rank 0's position (rank r reads B·T·r tokens further on).
    public var state: State {
        var d = train.state
        d.position -= options.B * options.T * train.rank
        return State(step: step, data: d, options: options, worldSize: reducer?.worldSize ?? 1)
    }

    /// Continues from a checkpoint's state (the model's tensors are restored by the caller).
    public func restore(_ s: State) throws {
        step = s.step
        var d = s.data
        d.position += options.B * options.T * train.rank
        try train.restore(d)
    }
}
