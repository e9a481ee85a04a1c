// llm.c model files (`gpt2_124M.bin`, `gpt2_124M_bf16.bin`): a 256-int32 header
// [0] magic 20240326, [1] version (3 = fp32, 5 = bf16), [2] maxT, [3] V, [4] L, [5] NH, [6] C,
// [7] Vp, then the 16 parameter tensors in llm.c order (wte (Vp,C), wpe (maxT,C), ln1w (L,C), ...,
// lnfb (C)), weights (out, in): exactly `ParameterName` order and layout, so the data is one read.
// Reference: llm.c train_gpt2.c gpt2_build_from_checkpoint, train_gpt2.py write_model.
// The header is validated in one place (`LlmcModelHeader.init`) against the file length.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors reading an llm.c model file; each names the file (and the tensor where relevant).
public enum LlmcModelError: LocalizedError, Equatable {
    /// The file could not be opened (missing, unreadable, a directory).
    case cannotOpen(path: String, reason: String)
    /// Fewer than the 1024 header bytes.
    case truncatedHeader(path: String, size: Int)
    /// Header word 0 is not 20240326 (token shards, optimizer state and HellaSwag files are named).
    case badMagic(path: String, found: Int32)
    /// Header word 1 is not 3 (fp32) or 5 (bf16).
    case unsupportedVersion(path: String, version: Int32)
    /// A dimension is non-positive, implausibly large or inconsistent (C % NH, Vp < V).
    case badDimensions(path: String, detail: String)
    /// The file ends before the data the header implies, inside `tensor`.
    case truncated(path: String, tensor: String, size: Int, expected: Int)
    /// The file is longer than the header implies.
    case trailingBytes(path: String, size: Int, expected: Int)
    /// A read failed (I/O error, or the file shrank while reading).
    case readFailed(path: String, tensor: String, reason: String)

    public var errorDescription: String? { oneLine(message) }

    /// The message before control characters from the file are escaped.
    private var message: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "cannot open llm.c model file '\(path)': \(reason)"
        case .truncatedHeader(let path, let size):
            return "llm.c model file '\(path)' is \(size) bytes, shorter than its 1024-byte header; the file is truncated"
        case .badMagic(let path, let found):
            let hint: String
            switch found {
            case LlmcModelHeader.tokenShardMagic: hint = "this is an llm.c token shard, not a model"
            case LlmcModelHeader.optimizerStateMagic: hint = "this is llm.c optimizer state, not a model"
            case LlmcModelHeader.hellaswagMagic: hint = "this is an llm.c HellaSwag file, not a model"
            default: hint = "not an llm.c model file (write one with train_gpt2.py or saveLlmcModel)"
            }
            return "bad magic \(found) in '\(path)' (expected \(LlmcModelHeader.magic)); \(hint)"
        case .unsupportedVersion(let path, let version):
            return "llm.c model file '\(path)' has version \(version); supported: 3 (fp32, padded vocab) and 5 (bf16). Re-export it with a current llm.c train_gpt2.py"
        case .badDimensions(let path, let detail):
            return "llm.c model file '\(path)' has an invalid header: \(detail); the file is corrupt"
        case .truncated(let path, let tensor, let size, let expected):
            return "llm.c model file '\(path)' is truncated: \(size) bytes, the header implies \(expected); it ends inside tensor '\(tensor)'"
        case .trailingBytes(let path, let size, let expected):
            return "llm.c model file '\(path)' has \(size - expected) bytes after the last tensor (\(size) bytes, the header implies \(expected)); the header does not match the data"
        case .readFailed(let path, let tensor, let reason):
            return "reading tensor '\(tensor)' from llm.c model file '\(path)' failed: \(reason)"
        }
    }
}

/// The validated 256-int32 header of an llm.c model file.
struct LlmcModelHeader {
    static let magic: Int32 = 20240326
    static let tokenShardMagic: Int32 = 20240520
    static let hellaswagMagic: Int32 = 20240522
    static let optimizerStateMagic: Int32 = 20240527
    static let byteCount = 256 * 4

    let config: GPT2Config
    let bf16: Bool
    /// Bytes per stored element (4 or 2).
    var elementSize: Int { bf16 ? 2 : 4 }
    /// Expected total file size.
    var fileSize: Int { LlmcModelHeader.byteCount + storedParameterCount(config) * elementSize }

    /// Validates `words` (the first 256 int32) against a file of `size` bytes.
    init(words: [Int32], size: Int, path: String) throws {
        guard words[0] == LlmcModelHeader.magic else { throw LlmcModelError.badMagic(path: path, found: words[0]) }
        guard words[1] == 3 || words[1] == 5 else { throw LlmcModelError.unsupportedVersion(path: path, version: words[1]) }
        bf16 = words[1] == 5
        config = GPT2Config(maxSeqLen: Int(words[2]), vocabSize: Int(words[3]), paddedVocabSize: Int(words[7]),
                            numLayers: Int(words[4]), numHeads: Int(words[5]), channels: Int(words[6]))
        if let problem = config.problem(naming: llmcHeaderName) {
            throw LlmcModelError.badDimensions(path: path, detail: problem)
        }
        let expected = LlmcModelHeader.byteCount + storedParameterCount(config) * (bf16 ? 2 : 4)
        if size < expected {
            // Name the tensor the file ends in.
            var offset = LlmcModelHeader.byteCount
            var tensor = ParameterName.wte.name
            for p in ParameterName.allCases {
                tensor = p.name
                offset += p.count(config) * (bf16 ? 2 : 4)
                if offset > size { break }
            }
            throw LlmcModelError.truncated(path: path, tensor: tensor, size: size, expected: expected)
        }
        if size > expected { throw LlmcModelError.trailingBytes(path: path, size: size, expected: expected) }
    }

    /// The header words for `config`.
    static func words(for config: GPT2Config, bf16: Bool) -> [Int32] {
        var h = [Int32](repeating: 0, count: 256)
        h[0] = magic
        h[1] = bf16 ? 5 : 3
        h[2] = Int32(config.maxSeqLen)
        h[3] = Int32(config.vocabSize)
        h[4] = Int32(config.numLayers)
        h[5] = Int32(config.numHeads)
        h[6] = Int32(config.channels)
        h[7] = Int32(config.paddedVocabSize)
        return h
    }
}

/// How llm.c's header names each size, for messages.
func llmcHeaderName(_ field: GPT2ConfigField) -> String {
    switch field {
    case .maxSeqLen: return "header[2] (max sequence length)"
    case .vocabSize: return "header[3] (vocab size)"
    case .numLayers: return "header[4] (layers)"
    case .numHeads: return "header[5] (heads)"
    case .channels: return "header[6] (channels)"
    case .paddedVocabSize: return "header[7] (padded vocab size)"
    }
}

/// Total element count of all 16 tensors (with the padded vocabulary).
func storedParameterCount(_ c: GPT2Config) -> Int {
    ParameterName.allCases.reduce(0) { $0 + $1.count(c) }
}

/// Loads an llm.c model file (version 3 fp32 or version 5 bf16, as written by llm.c's
/// `train_gpt2.py` or `saveLlmcModel`).
/// - Parameter path: the `.bin` file, e.g. `gpt2_124M.bin`.
/// - Returns: a model with the file's parameters (bf16 values widened exactly to Float).
/// - Throws: `LlmcModelError` naming the file: short header, bad magic, unknown version,
///   implausible dimensions, a length that does not match the header, or a failed read.
public func loadLlmcModel(path: String) throws -> GPT2 {
    if let problem = FileKind.regularFileProblem(path) { throw LlmcModelError.cannotOpen(path: path, reason: problem) }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw LlmcModelError.cannotOpen(path: path, reason: formatErrnoText()) }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw LlmcModelError.cannotOpen(path: path, reason: formatErrnoText()) }
    let size = Int(st.st_size)
    if size < LlmcModelHeader.byteCount { throw LlmcModelError.truncatedHeader(path: path, size: size) }
    var words = [Int32](repeating: 0, count: 256)
    let got = try words.withUnsafeMutableBytes { try preadFully(fd, $0.baseAddress!, LlmcModelHeader.byteCount, at: 0, path: path, tensor: "header") }
    if got < LlmcModelHeader.byteCount { throw LlmcModelError.truncatedHeader(path: path, size: got) }
    words = words.map { Int32(littleEndian: $0) }
    let header = try LlmcModelHeader(words: words, size: size, path: path)

    let model = GPT2(config: header.config)
    var offset = LlmcModelHeader.byteCount
    let chunk = 1 << 20   // bf16 elements converted per read
    let staging = header.bf16 ? UnsafeMutableRawPointer.allocate(byteCount: 2 * chunk, alignment: 16) : nil
    defer { staging?.deallocate() }
    for p in ParameterName.allCases {
        let dst = model.params.pointer(p), n = model.params.count(p)
        if let staging {
            var done = 0
            while done < n {
                let k = min(chunk, n - done)
                let r = try preadFully(fd, staging, 2 * k, at: offset + 2 * done, path: path, tensor: p.name)
                if r < 2 * k { throw LlmcModelError.readFailed(path: path, tensor: p.name, reason: "unexpected end of file (was it truncated while reading?)") }
                for j in 0..<k {
                    dst[done + j] = floatFromBFloat16Bits(UInt16(littleEndian: staging.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self)))
                }
                done += k
            }
            offset += 2 * n
        } else {
            let r = try preadFully(fd, UnsafeMutableRawPointer(dst), 4 * n, at: offset, path: path, tensor: p.name)
            if r < 4 * n { throw LlmcModelError.readFailed(path: path, tensor: p.name, reason: "unexpected end of file (was it truncated while reading?)") }
            offset += 4 * n   // little-endian hosts only (x86-64, arm64)
        }
    }
    return model
}

/// Reads up to `count` bytes at `offset`, retrying short reads and EINTR; fewer only at end of file.
private func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, at offset: Int,
                        path: String, tensor: String) throws -> Int {
    var done = 0
    while done < count {
        let n = pread(fd, buffer + done, min(count - done, 1 << 30), off_t(offset + done))
        if n < 0 {
            if errno == EINTR { continue }
            throw LlmcModelError.readFailed(path: path, tensor: tensor, reason: formatErrnoText())
        }
        if n == 0 { break }
        done += n
    }
    return done
}

/// Writes `model` as an llm.c model file that llm.c's `train_gpt2.c` (version 3) or
/// `train_gpt2.cu` (version 5) can load, atomically (temporary file, fsync, rename).
/// - Parameters:
///   - model: the model; all `paddedVocabSize` rows of `wte` are written, as llm.c does.
///   - path: destination `.bin` file.
///   - bf16: write version 5 (bfloat16, round to nearest even) instead of version 3 (fp32).
/// - Throws: `FormatWriteError` naming `path`.
public func saveLlmcModel(_ model: GPT2, to path: String, bf16: Bool = false) throws {
    let words = LlmcModelHeader.words(for: model.config, bf16: bf16).map { $0.littleEndian }
    try AtomicOutputFile.write(to: path) { file in
        try words.withUnsafeBytes { try file.write($0.baseAddress!, count: $0.count) }
        for p in ParameterName.allCases {
            let t = SafeTensorsOutputTensor(name: p.name, shape: [model.params.count(p)],
                                            data: UnsafeBufferPointer(model.params.buffer(p)), dtype: bf16 ? .BF16 : .F32)
            try writeTensorData(t, to: file)
        }
    }
}
