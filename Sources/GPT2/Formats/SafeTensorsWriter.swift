// Writing safetensors files (https://huggingface.co/docs/safetensors) atomically: an 8-byte
// little-endian header length N, N bytes of JSON (dtype, shape, data_offsets per tensor, optional
// "__metadata__" string map) padded with spaces to a multiple of 8, then the raw little-endian data.
// Files are written under a temporary name in the target directory, fsynced and renamed into place,
// so readers never see a half-written file. F32 and BF16 (round to nearest even) are supported.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors writing a model, checkpoint or safetensors file. The target file is never left
/// half-written: the temporary file is removed and an existing file keeps its old contents.
public enum FormatWriteError: LocalizedError, Equatable {
    /// The temporary file beside `path` could not be created.
    case cannotCreate(path: String, reason: String)
    /// Writing, syncing or closing the temporary file failed.
    case writeFailed(path: String, reason: String)
    /// The finished temporary file could not be renamed to `path`.
    case cannotRename(path: String, reason: String)
    /// The directory for an export could not be created.
    case cannotCreateDirectory(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .cannotCreate(let path, let reason):
            return "cannot write '\(path)': \(reason); check that the directory exists and is writable"
        case .writeFailed(let path, let reason):
            return "writing '\(path)' failed: \(reason); nothing was written (check free disk space)"
        case .cannotRename(let path, let reason):
            return "cannot move the finished file into place at '\(path)': \(reason); nothing was written"
        case .cannotCreateDirectory(let path, let reason):
            return "cannot create directory '\(path)': \(reason)"
        }
    }
}

// MARK: - Atomic output file

/// A file written under a unique temporary name beside `path` and renamed into place by `commit()`.
/// `abandon()` (or a failed commit) removes the temporary file.
public struct AtomicOutputFile {
    /// The final path.
    public let path: String
    /// `.<name>.tmp-<pid>-<random>` in the same directory, so rename is atomic.
    public let temporaryPath: String
    private var fd: Int32

    init(path: String) throws {
        self.path = path
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        temporaryPath = dir + "." + base + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw FormatWriteError.cannotCreate(path: path, reason: formatErrnoText()) }
    }

    /// Appends `count` bytes.
    public func write(_ bytes: UnsafeRawPointer, count: Int) throws {
        var done = 0
        while done < count {
            let n = posixWrite(fd, bytes + done, min(count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatWriteError.writeFailed(path: path, reason: formatErrnoText())
            }
            done += n
        }
    }

    /// Appends `bytes`.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { b in
            if let base = b.baseAddress { try write(base, count: b.count) }
        }
    }

    /// fsync, close, rename into place, then fsync the directory so the rename is durable.
    mutating func commit() throws {
        if fsync(fd) != 0 { throw FormatWriteError.writeFailed(path: path, reason: "fsync: " + formatErrnoText()) }
        let closed = close(fd)
        fd = -1
        if closed != 0 { throw FormatWriteError.writeFailed(path: path, reason: "close: " + formatErrnoText()) }
        if rename(temporaryPath, path) != 0 { throw FormatWriteError.cannotRename(path: path, reason: formatErrnoText()) }
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? "."
        let dfd = open(dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)   // some filesystems refuse directory fsync (EINVAL); the data is already synced
            close(dfd)
        }
    }

    /// Closes and removes the temporary file.
    mutating func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(temporaryPath)
    }

    /// Creates the temporary file, runs `body` on it and commits; on any error removes the
    /// temporary file and rethrows.
    public static func write(to path: String, _ body: (AtomicOutputFile) throws -> Void) throws {
        var file = try AtomicOutputFile(path: path)
        do {
            try body(file)
            try file.commit()
        } catch {
            file.abandon()
            throw error
        }
    }
}

@inline(__always)
private func posixWrite(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buf, count)
}

func formatErrnoText() -> String { String(cString: strerror(errno)) }

// MARK: - BF16

/// Float → bfloat16 bits, round to nearest even (as `torch.Tensor.to(torch.bfloat16)`);
/// every NaN becomes the quiet NaN 0x7FC0 (as c10::BFloat16), overflow rounds to ±infinity.
@inline(__always)
public func bfloat16Bits(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return 0x7FC0 }
    let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

/// bfloat16 bits → Float (exact).
@inline(__always)
public func floatFromBFloat16Bits(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

// MARK: - Writer

/// One tensor to write with `writeSafeTensors(_:metadata:to:)`.
public struct SafeTensorsOutputTensor {
    /// Tensor name in the header.
    public var name: String
    /// Shape as stored in the file.
    public var shape: [Int]
    /// The values: `shape` in row-major order, or the transpose of a 2-D `shape` when
    /// `transposed` is set.
    public var data: UnsafeBufferPointer<Float>
    /// Stored element type: `.F32` or `.BF16` (round to nearest even).
    public var dtype: SafeTensorsDType
    /// When true, `shape` must be `[a, b]` and `data` holds the (b, a) matrix row-major; it is
    /// transposed while writing (used for HF's Conv1D weights, stored (in, out)).
    public var transposed: Bool

    /// - Parameters:
    ///   - name: tensor name.
    ///   - shape: stored shape; its product must equal `data.count`.
    ///   - data: the values (the buffer must stay valid until the write returns).
    ///   - dtype: `.F32` (default) or `.BF16`.
    ///   - transposed: write the transpose of `data`, a (shape[1], shape[0]) matrix.
    public init(name: String, shape: [Int], data: UnsafeBufferPointer<Float>, dtype: SafeTensorsDType = .F32,
                transposed: Bool = false) {
        precondition(shape.reduce(1, *) == data.count, "SafeTensorsOutputTensor \(name): \(data.count) values for shape \(shape)")
        precondition(dtype == .F32 || dtype == .BF16, "SafeTensorsOutputTensor \(name): dtype \(dtype) not writable (F32 or BF16)")
        precondition(!transposed || shape.count == 2, "SafeTensorsOutputTensor \(name): transposed needs a 2-D shape, got \(shape)")
        self.name = name
        self.shape = shape
        self.data = data
        self.dtype = dtype
        self.transposed = transposed
    }
}

/// `__metadata__` key under which `writeSafeTensors` stores a CRC-32C per tensor: a JSON object
/// (sorted keys) mapping each tensor name to the checksum of its stored bytes as 8 lowercase hex
/// digits, e.g. `{"lnfb":"1c291ca3","wte":"9a3e0c51"}`. Other safetensors readers ignore it;
/// `SafeTensorsFile` verifies it whenever a tensor is read.
public let safeTensorsChecksumKey = "crc32c"

/// Writes `tensors` (in the given order) and `metadata` as a safetensors file at `path`, atomically:
/// the file is written under a temporary name in the same directory, fsynced and renamed into place.
/// The header is deterministic (metadata keys sorted, tensors in the given order), so the same
/// tensors and metadata always give the same bytes, and it carries a CRC-32C of every tensor
/// under `safeTensorsChecksumKey`.
/// - Parameters:
///   - tensors: tensors with distinct names (not `__metadata__`).
///   - metadata: the `__metadata__` string map (the key `crc32c` is reserved).
///   - path: destination file; an existing file is replaced only once the new one is complete.
/// - Throws: `FormatWriteError` naming `path`; the temporary file is removed on failure.
public func writeSafeTensors(_ tensors: [SafeTensorsOutputTensor], metadata: [String: String] = [:], to path: String) throws {
    precondition(metadata[safeTensorsChecksumKey] == nil, "writeSafeTensors: metadata key '\(safeTensorsChecksumKey)' is reserved")
    var md = metadata
    md[safeTensorsChecksumKey] = safeTensorsChecksumJSON(tensors)
    let header = safeTensorsHeader(tensors, metadata: md)
    try AtomicOutputFile.write(to: path) { file in
        var n = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &n) { try file.write($0.baseAddress!, count: 8) }
        try file.write(header)
        for t in tensors { try writeTensorData(t, to: file) }
    }
}

/// `{"name":"8 hex digits",...}` with sorted names: the CRC-32C of each tensor's stored bytes.
func safeTensorsChecksumJSON(_ tensors: [SafeTensorsOutputTensor]) -> String {
    let entries = tensors.map { t -> (String, UInt32) in
        var crc: UInt32 = 0
        storedBytes(t) { crc = CRC32C.checksum($0.baseAddress!, count: $0.count, continuing: crc) }
        return (t.name, crc)
    }.sorted { $0.0 < $1.0 }
    return "{" + entries.map { jsonQuoted($0.0) + ":\"" + hex8($0.1) + "\"" }.joined(separator: ",") + "}"
}

/// `v` as 8 lowercase hex digits.
func hex8(_ v: UInt32) -> String {
    let h = String(v, radix: 16)
    return String(repeating: "0", count: 8 - h.count) + h
}

/// The JSON header padded with spaces so that 8 + its length is a multiple of 8; metadata keys
/// sorted, tensors in the given order.
func safeTensorsHeader(_ tensors: [SafeTensorsOutputTensor], metadata: [String: String]) -> [UInt8] {
    var seen = Set<String>()
    var entries: [String] = []
    if !metadata.isEmpty {
        let md = metadata.keys.sorted().map { jsonQuoted($0) + ":" + jsonQuoted(metadata[$0]!) }
        entries.append("\"__metadata__\":{" + md.joined(separator: ",") + "}")
    }
    var offset = 0
    for t in tensors {
        precondition(t.name != "__metadata__" && seen.insert(t.name).inserted, "writeSafeTensors: duplicate or reserved tensor name '\(t.name)'")
        let bytes = t.data.count * t.dtype.size
        entries.append(jsonQuoted(t.name) + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":["
                       + t.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(offset + bytes)]}")
        offset += bytes
    }
    var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
    while header.count % 8 != 0 { header.append(0x20) }   // data starts 8-byte aligned
    return header
}

/// Streams one tensor's stored bytes to `file`.
func writeTensorData(_ t: SafeTensorsOutputTensor, to file: AtomicOutputFile) throws {
    var failure: Error?
    storedBytes(t) { chunk in
        guard failure == nil else { return }
        do { try file.write(chunk.baseAddress!, count: chunk.count) } catch { failure = error }
    }
    if let failure { throw failure }
}

/// Calls `body` with the tensor's bytes as stored (converted and transposed as requested), in
/// order, through a bounded staging buffer; F32 tensors that need no transpose are passed whole.
func storedBytes(_ t: SafeTensorsOutputTensor, _ body: (UnsafeRawBufferPointer) -> Void) {
    let n = t.data.count
    guard n > 0, let src = t.data.baseAddress else { return }
    if t.dtype == .F32 && !t.transposed {
        body(UnsafeRawBufferPointer(start: src, count: 4 * n))   // little-endian hosts only (x86-64, arm64)
        return
    }
    let chunk = 1 << 18   // elements per call
    let staging = UnsafeMutableRawPointer.allocate(byteCount: 4 * chunk, alignment: 16)
    defer { staging.deallocate() }
    // Element i of the stored tensor comes from data[index(i)].
    let rows = t.shape.first ?? 1, cols = t.shape.count == 2 ? t.shape[1] : 1
    var start = 0
    while start < n {
        let count = min(chunk, n - start)
        for j in 0..<count {
            let i = start + j
            let v = t.transposed ? src[(i % cols) * rows + i / cols] : src[i]
            if t.dtype == .BF16 {
                staging.storeBytes(of: bfloat16Bits(v).littleEndian, toByteOffset: 2 * j, as: UInt16.self)
            } else {
                staging.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * j, as: UInt32.self)
            }
        }
        body(UnsafeRawBufferPointer(start: staging, count: count * t.dtype.size))
        start += count
    }
}

/// A JSON string literal for `s`.
func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}
