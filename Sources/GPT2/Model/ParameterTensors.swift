// The 16 parameter tensors of GPT-2 in llm.c order, stored in one contiguous Float allocation.
// Gradients and AdamW moments reuse the same layout, so optimizer loops run over `count`.
// Weights are (out, in) as llm.c / nn.Linear; HF's Conv1D stores (in, out) and is transposed on load.
// Reference: llm.c fill_in_parameter_sizes, nanoGPT from_pretrained.

/// One parameter tensor of GPT-2, in llm.c's order. Shapes use L layers, C channels,
/// Vp padded vocab, maxT positions.
public enum ParameterName: Int, CaseIterable, Sendable {
    case wte        // (Vp, C)   token embedding, tied to the LM head
    case wpe        // (maxT, C) position embedding
    case ln1w       // (L, C)
    case ln1b       // (L, C)
    case qkvw       // (L, 3C, C)
    case qkvb       // (L, 3C)
    case attprojw   // (L, C, C)
    case attprojb   // (L, C)
    case ln2w       // (L, C)
    case ln2b       // (L, C)
    case fcw        // (L, 4C, C)
    case fcb        // (L, 4C)
    case fcprojw    // (L, C, 4C)
    case fcprojb    // (L, C)
    case lnfw       // (C)
    case lnfb       // (C)

    /// Full shape in llm.c's layout (leading L for per-layer tensors).
    public func shape(_ c: GPT2Config) -> [Int] {
        let L = c.numLayers, C = c.channels
        switch self {
        case .wte: return [c.paddedVocabSize, C]
        case .wpe: return [c.maxSeqLen, C]
        case .ln1w, .ln1b, .attprojb, .ln2w, .ln2b, .fcprojb: return [L, C]
        case .qkvw: return [L, 3 * C, C]
        case .qkvb: return [L, 3 * C]
        case .attprojw: return [L, C, C]
        case .fcw: return [L, 4 * C, C]
        case .fcb: return [L, 4 * C]
        case .fcprojw: return [L, C, 4 * C]
        case .lnfw, .lnfb: return [C]
        }
    }

    /// Element count of the whole tensor.
    public func count(_ c: GPT2Config) -> Int { shape(c).reduce(1, *) }

    /// Whether the tensor has a leading layer dimension.
    public var isPerLayer: Bool {
        switch self {
        case .wte, .wpe, .lnfw, .lnfb: return false
        default: return true
        }
    }

    /// Shape of one layer's slice (the full shape for global tensors).
    public func layerShape(_ c: GPT2Config) -> [Int] {
        isPerLayer ? Array(shape(c).dropFirst()) : shape(c)
    }

    /// 2-D weights (matmul weights and embeddings) get weight decay; biases and LayerNorm do not
    /// (nanoGPT configure_optimizers: `p.dim() >= 2`).
    public var isDecayed: Bool {
        switch self {
        case .wte, .wpe, .qkvw, .attprojw, .fcw, .fcprojw: return true
        default: return false
        }
    }

    /// HF GPT-2 stores these as Conv1D weights, shape (in, out): transposed relative to ours.
    public var isTransposedInHF: Bool {
        switch self {
        case .qkvw, .attprojw, .fcw, .fcprojw: return true
        default: return false
        }
    }

    /// Initialised with N(0, 0.02/sqrt(2L)) (GPT-2's scaled residual projections).
    public var isResidualProjection: Bool { self == .attprojw || self == .fcprojw }

    /// Hugging Face key (without the optional "transformer." prefix) for `layer`.
    public func hfKey(layer: Int) -> String {
        switch self {
        case .wte: return "wte.weight"
        case .wpe: return "wpe.weight"
        case .ln1w: return "h.\(layer).ln_1.weight"
        case .ln1b: return "h.\(layer).ln_1.bias"
        case .qkvw: return "h.\(layer).attn.c_attn.weight"
        case .qkvb: return "h.\(layer).attn.c_attn.bias"
        case .attprojw: return "h.\(layer).attn.c_proj.weight"
        case .attprojb: return "h.\(layer).attn.c_proj.bias"
        case .ln2w: return "h.\(layer).ln_2.weight"
        case .ln2b: return "h.\(layer).ln_2.bias"
        case .fcw: return "h.\(layer).mlp.c_fc.weight"
        case .fcb: return "h.\(layer).mlp.c_fc.bias"
        case .fcprojw: return "h.\(layer).mlp.c_proj.weight"
        case .fcprojb: return "h.\(layer).mlp.c_proj.bias"
        case .lnfw: return "ln_f.weight"
        case .lnfb: return "ln_f.bias"
        }
    }

    /// Short llm.c-style name ("wte", "qkvw", ...), used as the checkpoint tensor name.
    public var name: String { String(describing: self) }
}

/// An owning, 64-byte aligned, zero-initialised Float allocation.
public final class FlatBuffer: @unchecked Sendable {
    /// Start of the allocation.
    public let memory: UnsafeMutablePointer<Float>
    /// Number of Floats.
    public let count: Int

    public init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Float>.stride, alignment: 64)
        memory = raw.bindMemory(to: Float.self, capacity: max(1, count))
        memory.initialize(repeating: 0, count: max(1, count))
    }

    deinit { memory.deallocate() }

    /// Sets every element to 0 (multi-threaded for large buffers).
    public func zero() {
        let p = UncheckedSendable(value: memory)
        Parallel.chunks(count, minChunk: 1 << 20, align: 16) { r in
            (p.value + r.lowerBound).update(repeating: 0, count: r.count)
        }
    }
}

/// GPT-2's parameters (or gradients, or AdamW moments: same layout) as named views into one
/// contiguous allocation, in `ParameterName` order.
public final class ParameterTensors: @unchecked Sendable {
    public let config: GPT2Config
    let buffer: FlatBuffer
    /// Offset of each tensor, indexed by `ParameterName.rawValue`.
    let offsets: [Int]
    let counts: [Int]

    /// Allocates zeroed tensors for `config`, which must be valid (`validationError == nil`:
    /// every size within `GPT2ConfigField.limit`, so no element count can overflow). Configs
    /// read from files are checked by their loaders before they get here.
    public init(config: GPT2Config) {
        if let problem = config.validationError { preconditionFailure("ParameterTensors: invalid GPT2Config: \(problem)") }
        self.config = config
        var offsets: [Int] = [], counts: [Int] = [], total = 0
        for p in ParameterName.allCases {
            offsets.append(total)
            counts.append(p.count(config))
            total += p.count(config)
        }
        self.offsets = offsets
        self.counts = counts
        buffer = FlatBuffer(count: total)
    }

    /// Start of the whole allocation (`count` Floats).
    public var memory: UnsafeMutablePointer<Float> { buffer.memory }
    /// Total element count over all 16 tensors.
    public var count: Int { buffer.count }

    /// Start of tensor `name`.
    public func pointer(_ name: ParameterName) -> UnsafeMutablePointer<Float> { buffer.memory + offsets[name.rawValue] }

    /// Start of layer `layer`'s slice of a per-layer tensor.
    public func pointer(_ name: ParameterName, layer: Int) -> UnsafeMutablePointer<Float> {
        precondition(name.isPerLayer && layer >= 0 && layer < config.numLayers, "\(name) has no layer \(layer)")
        return pointer(name) + layer * (counts[name.rawValue] / config.numLayers)
    }

    /// Element count of tensor `name`.
    public func count(_ name: ParameterName) -> Int { counts[name.rawValue] }

    /// Offset of tensor `name` from `memory`.
    public func offset(_ name: ParameterName) -> Int { offsets[name.rawValue] }

    /// Tensor `name` as a buffer.
    public func buffer(_ name: ParameterName) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer(name), count: count(name))
    }

    /// Sets every element to 0.
    public func zero() { buffer.zero() }

    /// Copies all values from `other` (same config).
    public func copy(from other: ParameterTensors) {
        precondition(other.config == config, "ParameterTensors.copy: config mismatch")
        memory.update(from: other.memory, count: count)
    }
}
