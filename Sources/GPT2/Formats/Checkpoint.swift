// Training checkpoints: one safetensors file holding the parameters (F32, keys = ParameterName
// names, llm.c layout: wte (Vp, C), weights (out, in)), optionally the AdamW moments
// (`adam_m.<name>`, `adam_v.<name>`), and `__metadata__` with format "gpt2-swift-checkpoint",
// version "1", the GPT2Config as JSON, the caller's trainer state (step, data position, RNG) and
// a CRC-32C per tensor ("crc32c", see `safeTensorsChecksumKey`), verified on load. Any
// safetensors tool can inspect it; the same state always gives the same bytes. `loadModel(path:)` also dispatches between the model formats.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors reading a checkpoint or recognising a model file; each names the file.
public enum CheckpointError: LocalizedError, Equatable {
    /// A safetensors file without our `format` metadata.
    case notACheckpoint(path: String, detail: String)
    /// A checkpoint format version this build cannot read.
    case unsupportedVersion(path: String, version: String)
    /// The `config` metadata is missing, not a GPT2Config, or implausible.
    case badConfig(path: String, detail: String)
    /// A parameter or moment tensor is missing, not F32, or has the wrong shape for the config.
    case badTensor(path: String, tensor: String, detail: String)
    /// Some but not all AdamW moment tensors are present.
    case incompleteOptimizerState(path: String, missing: String)
    /// Bytes after the last tensor's data.
    case trailingBytes(path: String, count: Int)
    /// `loadModel(path:)` could not recognise the file or directory.
    case unrecognizedModel(path: String, detail: String)

    public var errorDescription: String? { oneLine(message) }

    /// The message before control characters from the file are escaped.
    private var message: String {
        switch self {
        case .notACheckpoint(let path, let detail):
            return "'\(path)' is not a gpt2-swift checkpoint: \(detail); use loadModel(path:) for HF directories and llm.c .bin files"
        case .unsupportedVersion(let path, let version):
            return "checkpoint '\(path)' has format version \(version); this build reads version \(checkpointVersion) (upgrade gpt2-swift)"
        case .badConfig(let path, let detail):
            return "checkpoint '\(path)' has an invalid 'config' entry: \(detail); the file is corrupt"
        case .badTensor(let path, let tensor, let detail):
            return "tensor '\(tensor)' in checkpoint '\(path)': \(detail); the file is corrupt or from a different model"
        case .incompleteOptimizerState(let path, let missing):
            return "checkpoint '\(path)' has partial AdamW state (missing '\(missing)'); the file is corrupt"
        case .trailingBytes(let path, let count):
            return "checkpoint '\(path)' has \(count) bytes after its last tensor; the file is corrupt (was something appended to it?)"
        case .unrecognizedModel(let path, let detail):
            return "cannot load a model from '\(path)': \(detail). Expected a Hugging Face directory (config.json + model.safetensors), an llm.c model .bin, or a gpt2-swift checkpoint .safetensors"
        }
    }
}

/// `__metadata__["format"]` of our checkpoints.
public let checkpointFormat = "gpt2-swift-checkpoint"
/// `__metadata__["version"]` written by this build.
public let checkpointVersion = "1"
/// Metadata keys the checkpoint itself uses; callers may not pass them.
let reservedCheckpointKeys: Set<String> = ["format", "version", "config", safeTensorsChecksumKey]

/// `value` as compact JSON with sorted keys, for checkpoint metadata: `JSONEncoder` without
/// `.sortedKeys` orders object keys differently from one call to the next, which would make
/// checkpoints of identical state differ byte for byte.
public func checkpointMetadataJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Saves a training checkpoint to `path` atomically (temporary file, fsync, rename).
/// - Parameters:
///   - model: parameters are always saved (F32, bit-exact).
///   - includeOptimizer: also save the AdamW moments `model.adamM` / `model.adamV`.
///   - metadata: the caller's string entries (e.g. trainer state JSON from
///     `checkpointMetadataJSON`: step, data position, RNG states), stored in `__metadata__`; the
///     keys "format", "version", "config" and "crc32c" are reserved.
///   - path: destination `.safetensors` file.
/// - Throws: `FormatWriteError` naming `path`.
public func saveCheckpoint(_ model: GPT2, includeOptimizer: Bool, metadata: [String: String], to path: String) throws {
    for key in metadata.keys {
        precondition(!reservedCheckpointKeys.contains(key), "saveCheckpoint: metadata key '\(key)' is reserved")
    }
    var md = metadata
    md["format"] = checkpointFormat
    md["version"] = checkpointVersion
    md["config"] = checkpointConfigJSON(model.config)
    var groups: [(prefix: String, tensors: ParameterTensors)] = [("", model.params)]
    if includeOptimizer { groups += [("adam_m.", model.adamM), ("adam_v.", model.adamV)] }
    var tensors: [SafeTensorsOutputTensor] = []
    for (prefix, t) in groups {
        for p in ParameterName.allCases {
            tensors.append(SafeTensorsOutputTensor(name: prefix + p.name, shape: p.shape(model.config),
                                                   data: UnsafeBufferPointer(t.buffer(p))))
        }
    }
    try writeSafeTensors(tensors, metadata: md, to: path)
}

/// Loads a checkpoint written by `saveCheckpoint`: parameters and, when present, the AdamW
/// moments (into `adamM` / `adamV`). Every tensor is verified against its CRC-32C when the file
/// carries checksums (checkpoints written before checksums existed load without the check).
/// - Parameter path: the checkpoint `.safetensors` file.
/// - Returns: the model and the caller's metadata entries (without "format", "version", "config",
///   "crc32c").
/// - Throws: `SafeTensorsError` for a corrupt container or a checksum mismatch (naming the
///   tensor), `CheckpointError` for a file that is not a checkpoint or does not match its own
///   config; both name the file.
public func loadCheckpoint(path: String) throws -> (GPT2, metadata: [String: String]) {
    try loadCheckpoint(file: SafeTensorsFile(path: path))
}

func loadCheckpoint(file: SafeTensorsFile) throws -> (GPT2, metadata: [String: String]) {
    let path = file.path
    guard let format = file.metadata["format"] else {
        throw CheckpointError.notACheckpoint(path: path, detail: "no 'format' entry in __metadata__")
    }
    guard format == checkpointFormat else {
        throw CheckpointError.notACheckpoint(path: path, detail: "__metadata__ format is '\(format)', expected '\(checkpointFormat)'")
    }
    guard let version = file.metadata["version"] else {
        throw CheckpointError.notACheckpoint(path: path, detail: "no 'version' entry in __metadata__")
    }
    guard version == checkpointVersion else { throw CheckpointError.unsupportedVersion(path: path, version: version) }
    guard let configText = file.metadata["config"] else {
        throw CheckpointError.badConfig(path: path, detail: "missing")
    }
    let config: GPT2Config
    do {
        config = try JSONDecoder().decode(GPT2Config.self, from: Data(configText.utf8))
    } catch {
        throw CheckpointError.badConfig(path: path, detail: "not a GPT2Config JSON object (\(configText.prefix(200)))")
    }
    if let problem = config.problem() { throw CheckpointError.badConfig(path: path, detail: problem) }

    // Check every tensor before allocating, so a corrupt config cannot request a huge model.
    func check(_ name: String, _ p: ParameterName) throws {
        let info = try file.info(name)
        guard info.dtype == .F32 else {
            throw CheckpointError.badTensor(path: path, tensor: name, detail: "dtype \(info.dtype.rawValue), expected F32")
        }
        guard info.shape == p.shape(config) else {
            throw CheckpointError.badTensor(path: path, tensor: name, detail: "shape \(info.shape), expected \(p.shape(config)) from the checkpoint's config")
        }
    }
    for p in ParameterName.allCases { try check(p.name, p) }
    if let extra = safeTensorsTrailingBytes(file), extra > 0 {
        throw CheckpointError.trailingBytes(path: path, count: extra)
    }
    let hasM = ParameterName.allCases.contains { file.tensors["adam_m." + $0.name] != nil }
    let hasV = ParameterName.allCases.contains { file.tensors["adam_v." + $0.name] != nil }
    if hasM || hasV {
        for prefix in ["adam_m.", "adam_v."] {
            for p in ParameterName.allCases {
                guard file.tensors[prefix + p.name] != nil else {
                    throw CheckpointError.incompleteOptimizerState(path: path, missing: prefix + p.name)
                }
                try check(prefix + p.name, p)
            }
        }
    }

    let model = GPT2(config: config)
    var groups: [(prefix: String, tensors: ParameterTensors)] = [("", model.params)]
    if hasM || hasV { groups += [("adam_m.", model.adamM), ("adam_v.", model.adamV)] }
    for (prefix, t) in groups {
        for p in ParameterName.allCases {
            try file.read(prefix + p.name, expectedShape: p.shape(config), into: t.pointer(p))
        }
    }
    return (model, file.metadata.filter { !reservedCheckpointKeys.contains($0.key) })
}

/// Bytes after the end of the last tensor's data (the writer leaves none), or nil when the size
/// cannot be determined. `SafeTensorsFile` has already validated the header length.
func safeTensorsTrailingBytes(_ file: SafeTensorsFile) -> Int? {
    let fd = open(file.path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    var st = stat()
    var n: UInt64 = 0
    guard fstat(fd, &st) == 0, pread(fd, &n, 8, 0) == 8 else { return nil }
    let dataEnd = file.tensors.values.map(\.dataRange.upperBound).max() ?? 0
    return Int(st.st_size) - 8 - Int(UInt64(littleEndian: n)) - dataEnd
}

/// The config as compact JSON with sorted keys (stable across runs).
func checkpointConfigJSON(_ c: GPT2Config) -> String {
    // Encoding a struct of Ints cannot fail.
    try! checkpointMetadataJSON(c)
}

// MARK: - Any model file

/// Loads a model from any supported format, recognised by content:
/// - a Hugging Face directory (config.json + model.safetensors), or its model.safetensors file;
/// - an llm.c model `.bin` (magic 20240326, version 3 or 5);
/// - a gpt2-swift checkpoint `.safetensors` (AdamW moments are restored too when present).
/// - Parameter path: a file or directory.
/// - Returns: the model.
/// - Throws: the format's own error (`HFModelError`, `LlmcModelError`, `SafeTensorsError`,
///   `CheckpointError`), or `CheckpointError.unrecognizedModel`; all name the file.
public func loadModel(path: String) throws -> GPT2 {
    switch FileKind(path: path) {
    case .regular: break
    case .directory: return try loadHFModel(directory: path)
    case .missing: throw CheckpointError.unrecognizedModel(path: path, detail: "no such file or directory")
    case let kind: throw CheckpointError.unrecognizedModel(path: path, detail: "it is \(kind.description), not a file or directory")
    }

    // Sniff the first 9 bytes: an int32 magic, or a safetensors header length followed by '{'.
    var head = [UInt8](repeating: 0, count: 9)
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw CheckpointError.unrecognizedModel(path: path, detail: formatErrnoText()) }
    let got = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 9, 0) }
    close(fd)
    guard got >= 4 else { throw CheckpointError.unrecognizedModel(path: path, detail: "the file is only \(max(got, 0)) bytes") }
    let magic = head.withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(as: Int32.self)) }
    switch magic {
    case LlmcModelHeader.magic:
        return try loadLlmcModel(path: path)
    case LlmcModelHeader.tokenShardMagic:
        throw CheckpointError.unrecognizedModel(path: path, detail: "it is an llm.c token shard (magic \(magic))")
    case LlmcModelHeader.optimizerStateMagic:
        throw CheckpointError.unrecognizedModel(path: path, detail: "it is llm.c optimizer state (magic \(magic))")
    default:
        break
    }
    guard got == 9, head[8] == UInt8(ascii: "{") else {
        throw CheckpointError.unrecognizedModel(path: path, detail: "neither an llm.c model (magic \(magic)) nor a safetensors file")
    }
    let file = try SafeTensorsFile(path: path)
    if file.metadata["format"] == checkpointFormat { return try loadCheckpoint(file: file).0 }
    // A bare model.safetensors from an HF directory: load the directory when config.json is beside it.
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
    if URL(fileURLWithPath: path).lastPathComponent == "model.safetensors",
       FileKind(path: directory.appendingPathComponent("config.json").path) != .missing {
        return try loadHFModel(directory: directory.path)
    }
    throw CheckpointError.unrecognizedModel(path: path, detail: "a safetensors file without gpt2-swift checkpoint metadata and without a config.json beside it")
}
