// safetensors reader and writer (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, optional
// "__metadata__": {string: string}}, then the raw little-endian data. Every field is validated
// against the file size before any data is touched, so a corrupt file throws, never crashes.
// Files written by `writeSafeTensors` carry a CRC-32C per tensor in `__metadata__["crc32c"]`
// (see `safeTensorsChecksumKey`); a tensor is verified against it each time it is read.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors reading or writing a safetensors file; each names the file and, where relevant, the tensor.
public enum SafeTensorsError: LocalizedError, Equatable {
    case cannotOpen(path: String, reason: String)
    case truncated(path: String, size: Int)
    case badHeaderLength(path: String, headerLength: UInt64, fileSize: Int)
    case badHeaderJSON(path: String, detail: String)
    case badTensorEntry(path: String, tensor: String, detail: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    case badDataOffsets(path: String, tensor: String, begin: Int, end: Int, expectedBytes: Int, dataSize: Int)
    case overlappingData(path: String, tensor: String, other: String)
    case missingTensor(path: String, tensor: String)
    case shapeMismatch(path: String, tensor: String, found: [Int], expected: [Int])
    /// The `crc32c` metadata entry is not a JSON object of tensor names to 8 hex digits.
    case badChecksums(path: String, detail: String)
    /// A tensor's bytes do not match the CRC-32C stored for it in `__metadata__`.
    case checksumMismatch(path: String, tensor: String, stored: UInt32, computed: UInt32)

    public var errorDescription: String? { oneLine(message) }

    /// The message before control characters from the file are escaped.
    private var message: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "cannot open safetensors file '\(path)': \(reason)"
        case .truncated(let path, let size):
            return "safetensors file '\(path)' is truncated (\(size) bytes, need at least 8 for the header length)"
        case .badHeaderLength(let path, let n, let size):
            return "safetensors file '\(path)' declares a \(n)-byte header but the file has \(size) bytes; the file is truncated or not safetensors"
        case .badHeaderJSON(let path, let detail):
            return "safetensors file '\(path)' has a corrupt JSON header: \(detail)"
        case .badTensorEntry(let path, let tensor, let detail):
            return "tensor '\(tensor)' in '\(path)': \(detail)"
        case .unsupportedDType(let path, let tensor, let dtype):
            return "tensor '\(tensor)' in '\(path)' has dtype \(dtype); supported: F32, F16, BF16"
        case .badDataOffsets(let path, let tensor, let b, let e, let expected, let dataSize):
            return "tensor '\(tensor)' in '\(path)' has data_offsets [\(b), \(e)] but needs \(expected) bytes within a \(dataSize)-byte data section; the file is truncated or corrupt"
        case .overlappingData(let path, let tensor, let other):
            return "tensors '\(tensor)' and '\(other)' in '\(path)' overlap; the file is corrupt"
        case .missingTensor(let path, let tensor):
            return "tensor '\(tensor)' not found in '\(path)'"
        case .shapeMismatch(let path, let tensor, let found, let expected):
            return "tensor '\(tensor)' in '\(path)' has shape \(found), expected \(expected); the file belongs to a different model configuration"
        case .badChecksums(let path, let detail):
            return "safetensors file '\(path)' has a corrupt '\(safeTensorsChecksumKey)' metadata entry: \(detail)"
        case .checksumMismatch(let path, let tensor, let stored, let computed):
            return "tensor '\(tensor)' in '\(path)' fails its CRC-32C check (stored \(hex8(stored)), computed \(hex8(computed))); "
                + "the file is corrupt (disk or copy error): restore it or use an earlier checkpoint"
        }
    }
}

/// Element types of the safetensors format.
public enum SafeTensorsDType: String, Sendable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL
    case F8_E4M3, F8_E5M2

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL, .F8_E4M3, .F8_E5M2: return 1
        }
    }
}

/// A read-only, memory-mapped safetensors file with a validated header.
public final class SafeTensorsFile: @unchecked Sendable {
    /// One tensor's header entry.
    public struct TensorInfo: Sendable {
        public let dtype: SafeTensorsDType
        public let shape: [Int]
        /// Byte range within the data section (after the header).
        public let dataRange: Range<Int>
        public var elementCount: Int { shape.reduce(1, *) }
    }

    public let path: String
    /// The `__metadata__` map (empty if absent), without the `crc32c` entry (see `checksums`).
    public let metadata: [String: String]
    /// Header entries by tensor name.
    public let tensors: [String: TensorInfo]
    /// CRC-32C of each tensor's bytes from the `crc32c` metadata entry (files written by
    /// `writeSafeTensors`); empty for files without it (e.g. written by transformers).
    public let checksums: [String: UInt32]
    private let base: UnsafeMutableRawPointer
    private let fileSize: Int
    private let dataStart: Int

    /// Opens and validates `path`.
    /// - Throws: `SafeTensorsError` naming the file (and tensor) on any inconsistency.
    public init(path: String) throws {
        self.path = path
        // Opening a FIFO would block; a directory opens but cannot be mapped.
        if let problem = FileKind.regularFileProblem(path) { throw SafeTensorsError.cannotOpen(path: path, reason: problem) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SafeTensorsError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw SafeTensorsError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        if size < 8 { throw SafeTensorsError.truncated(path: path, size: size) }
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw SafeTensorsError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        do {
            var md: [String: String]
            (dataStart, md, tensors) = try SafeTensorsFile.parseHeader(UnsafeRawPointer(m), fileSize: size, path: path)
            checksums = try SafeTensorsFile.parseChecksums(md.removeValue(forKey: safeTensorsChecksumKey), tensors: tensors, path: path)
            metadata = md
        } catch {
            munmap(m, size)
            throw error
        }
        base = m
        fileSize = size
    }

    /// Validates the header of a mapped file: returns the data start, metadata and entries.
    private static func parseHeader(_ m: UnsafeRawPointer, fileSize: Int, path: String) throws
        -> (Int, [String: String], [String: TensorInfo]) {
        let n = UInt64(littleEndian: m.loadUnaligned(as: UInt64.self))
        guard n >= 2, n <= UInt64(fileSize - 8) else {
            throw SafeTensorsError.badHeaderLength(path: path, headerLength: n, fileSize: fileSize)
        }
        let dataStart = 8 + Int(n)
        let dataSize = fileSize - dataStart
        let headerData = Data(bytes: m + 8, count: Int(n))
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerData, options: [])
        } catch {
            throw SafeTensorsError.badHeaderJSON(path: path, detail: "not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = json as? [String: Any] else {
            throw SafeTensorsError.badHeaderJSON(path: path, detail: "top level is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var tensors: [String: TensorInfo] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let md = value as? [String: Any] else {
                    throw SafeTensorsError.badHeaderJSON(path: path, detail: "__metadata__ is not an object")
                }
                for (k, v) in md {
                    guard let s = v as? String else {
                        throw SafeTensorsError.badHeaderJSON(path: path, detail: "__metadata__ value for '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            tensors[name] = try parseEntry(name: name, value: value, path: path, dataSize: dataSize)
        }
        // Data ranges must not overlap (zero-sized tensors may share an offset).
        let sorted = tensors.filter { !$0.value.dataRange.isEmpty }.sorted { $0.value.dataRange.lowerBound < $1.value.dataRange.lowerBound }
        for i in sorted.indices.dropFirst() where sorted[i].value.dataRange.lowerBound < sorted[i - 1].value.dataRange.upperBound {
            throw SafeTensorsError.overlappingData(path: path, tensor: sorted[i].key, other: sorted[i - 1].key)
        }
        return (dataStart, metadata, tensors)
    }

    deinit {
        munmap(base, fileSize)
    }

    /// The `crc32c` entry: a JSON object mapping every tensor of the file to 8 hex digits.
    private static func parseChecksums(_ text: String?, tensors: [String: TensorInfo], path: String) throws -> [String: UInt32] {
        guard let text else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let map = object as? [String: Any] else {
            throw SafeTensorsError.badChecksums(path: path, detail: "not a JSON object")
        }
        var out: [String: UInt32] = [:]
        for (name, value) in map {
            guard tensors[name] != nil else {
                throw SafeTensorsError.badChecksums(path: path, detail: "checksum for '\(name)', which is not a tensor of the file")
            }
            guard let hex = value as? String, hex.utf8.count == 8, let crc = UInt32(hex, radix: 16) else {
                throw SafeTensorsError.badChecksums(path: path, detail: "checksum of '\(name)' is not 8 hex digits")
            }
            out[name] = crc
        }
        if let unlisted = tensors.keys.sorted().first(where: { out[$0] == nil }) {
            throw SafeTensorsError.badChecksums(path: path, detail: "no checksum for tensor '\(unlisted)'")
        }
        return out
    }

    /// Throws `.checksumMismatch` when the file carries checksums and `name`'s bytes differ.
    private func verify(_ name: String, _ t: TensorInfo) throws {
        guard let stored = checksums[name] else { return }
        let computed = CRC32C.checksum(UnsafeRawPointer(base) + dataStart + t.dataRange.lowerBound, count: t.dataRange.count)
        if computed != stored {
            throw SafeTensorsError.checksumMismatch(path: path, tensor: name, stored: stored, computed: computed)
        }
    }

    private static func parseEntry(name: String, value: Any, path: String, dataSize: Int) throws -> TensorInfo {
        guard let entry = value as? [String: Any] else {
            throw SafeTensorsError.badTensorEntry(path: path, tensor: name, detail: "header entry is not an object")
        }
        guard let dtypeName = entry["dtype"] as? String else {
            throw SafeTensorsError.badTensorEntry(path: path, tensor: name, detail: "missing or non-string 'dtype'")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw SafeTensorsError.unsupportedDType(path: path, tensor: name, dtype: dtypeName)
        }
        guard let shapeAny = entry["shape"] as? [Any] else {
            throw SafeTensorsError.badTensorEntry(path: path, tensor: name, detail: "missing or non-array 'shape'")
        }
        var shape: [Int] = []
        var count = 1
        for d in shapeAny {
            guard let v = jsonInt(d), v >= 0 else {
                throw SafeTensorsError.badTensorEntry(path: path, tensor: name, detail: "shape \(shapeAny) has a non-integer or negative dimension")
            }
            let (p, overflow) = count.multipliedReportingOverflow(by: v)
            if overflow || p > Int(Int32.max) * 64 {
                throw SafeTensorsError.badTensorEntry(path: path, tensor: name, detail: "shape \(shapeAny) is implausibly large")
            }
            shape.append(v)
            count = p
        }
        guard let offs = entry["data_offsets"] as? [Any], offs.count == 2, let b = jsonInt(offs[0]), let e = jsonInt(offs[1]) else {
            throw SafeTensorsError.badTensorEntry(path: path, tensor: name, detail: "'data_offsets' must be two integers")
        }
        let expected = count * dtype.size
        guard b >= 0, e >= b, e <= dataSize, e - b == expected else {
            throw SafeTensorsError.badDataOffsets(path: path, tensor: name, begin: b, end: e, expectedBytes: expected, dataSize: dataSize)
        }
        return TensorInfo(dtype: dtype, shape: shape, dataRange: b..<e)
    }

    /// An exact integer from a JSON number (rejects 1.5, true, "3").
    private static func jsonInt(_ v: Any) -> Int? {
        if let n = v as? NSNumber {
            let d = n.doubleValue
            guard d.rounded() == d, abs(d) < 9e15 else { return nil }
            return Int(d)
        }
        return nil
    }

    /// The header entry for `name`.
    /// - Throws: `.missingTensor` if absent.
    public func info(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else { throw SafeTensorsError.missingTensor(path: path, tensor: name) }
        return t
    }

    /// Converts tensor `name` to Float into `out`, checking its shape and, when the file carries
    /// checksums, its CRC-32C.
    /// - Parameters:
    ///   - expectedShape: required shape (nil accepts any shape).
    ///   - out: room for the tensor's element count.
    public func read(_ name: String, expectedShape: [Int]?, into out: UnsafeMutablePointer<Float>) throws {
        let t = try info(name)
        if let expectedShape, expectedShape != t.shape {
            throw SafeTensorsError.shapeMismatch(path: path, tensor: name, found: t.shape, expected: expectedShape)
        }
        try verify(name, t)
        let src = UnsafeRawPointer(base) + dataStart + t.dataRange.lowerBound
        let n = t.elementCount
        switch t.dtype {
        case .F32:
            memcpy(out, src, 4 * n)   // little-endian hosts only (x86-64, arm64)
        case .BF16:
            for i in 0..<n { out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
        case .F16:
            for i in 0..<n { out[i] = halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        default:
            throw SafeTensorsError.unsupportedDType(path: path, tensor: name, dtype: t.dtype.rawValue)
        }
    }

    /// Tensor `name` converted to `[Float]`.
    public func floats(_ name: String, expectedShape: [Int]? = nil) throws -> [Float] {
        let n = try info(name).elementCount
        var out = [Float](repeating: 0, count: n)
        try out.withUnsafeMutableBufferPointer { try read(name, expectedShape: expectedShape, into: $0.baseAddress!) }
        return out
    }

    /// Raw bytes of tensor `name` (any dtype), e.g. for integer token tensors; verified against
    /// the file's checksum when it carries one.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let t = try info(name)
        try verify(name, t)
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(base) + dataStart + t.dataRange.lowerBound, count: t.dataRange.count)
    }
}

/// IEEE half → Float, including subnormals, infinities and NaN.
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1F), mant = UInt32(h & 0x3FF)
    if exp == 0 {
        // zero or subnormal: mant * 2^-24
        let v = Float(mant) * 0x1p-24
        return sign == 0 ? v : -v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
}
