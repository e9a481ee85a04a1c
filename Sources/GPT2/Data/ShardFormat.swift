// Token shards: the files `gpt prepare` writes and the training data loader reads. Both layouts are
// a header followed by the token ids as uint16 little-endian, one per token:
//   .npy  build-nanogpt (fineweb.py): np.save of a 1-D '<u2' array, numpy format 1.0, byte-identical
//         to np.save (header padded with spaces and a final '\n' to a multiple of 64 bytes).
//   .bin  llm.c (dev/data/data_common.py): 256 int32 header [20240520, 1, token count, 0...], 1024 bytes.
// Readers detect the layout by magic, not by file name, and validate everything in one place
// (`ShardHeader.parse`). https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The on-disk layout of a token shard.
public enum ShardFormat: String, CaseIterable, Sendable {
    /// build-nanogpt: numpy `.npy` (format 1.0) of a 1-D uint16 array.
    case npy
    /// llm.c: 256 int32 header (magic 20240520, version 1, token count), then uint16 tokens.
    case bin

    /// File extension without the dot (`npy`, `bin`).
    public var fileExtension: String { rawValue }
}

/// The split a shard belongs to. Shard 0 is validation, as in fineweb.py and llm.c.
public enum DatasetSplit: String, CaseIterable, Sendable {
    case train
    case val
}

/// Errors reading or writing token shards. Every message names the file.
public enum ShardError: LocalizedError, Equatable {
    /// The file could not be opened (missing, permission denied, a directory...).
    case cannotOpen(path: String, reason: String)
    /// A read or write system call failed.
    case ioFailed(path: String, reason: String)
    /// Neither the numpy magic nor the llm.c token-shard magic.
    case badMagic(path: String, found: Int32, expected: Int32)
    /// llm.c header with a version other than 1, or a numpy format version other than 1.x–3.x.
    case unsupportedVersion(path: String, found: Int, expected: Int)
    /// The header could not be parsed (file shorter than a header, bad numpy dictionary, negative count).
    case badHeader(path: String, reason: String)
    /// The numpy array is not uint16.
    case unsupportedDType(path: String, found: String)
    /// The numpy array is not 1-D.
    case badShape(path: String, shape: String)
    /// The file is shorter than its header says (or than a header).
    case truncated(path: String, tokenCount: Int, expectedBytes: Int, actualBytes: Int)
    /// The file is longer than its header says.
    case trailingBytes(path: String, tokenCount: Int, expectedBytes: Int, actualBytes: Int)
    /// Token `index` (0-based, after the header) is `token`, not below the model's `vocabSize`.
    case tokenOutOfRange(path: String, index: Int, token: Int, vocabSize: Int)
    /// A path given as a directory of shards is a file (or a FIFO...).
    case notADirectory(path: String, kind: String)

    public var errorDescription: String? { oneLine(message) }

    /// The message before control characters from the file are escaped.
    private var message: String {
        let hint = "re-run 'gpt prepare'"
        switch self {
        case let .cannotOpen(path, reason):
            return "cannot open token shard '\(path)': \(reason)"
        case let .ioFailed(path, reason):
            return "I/O error on token shard '\(path)': \(reason)"
        case let .badMagic(path, found, expected):
            let known: [Int32: String] = [
                20240326: " (that is an llm.c model checkpoint)",
                20240522: " (that is an llm.c HellaSwag eval file)",
                20240527: " (that is an llm.c optimizer state file)",
            ]
            return "bad magic \(found) in '\(path)'\(known[found] ?? "") (expected \(expected) for an llm.c "
                + ".bin token shard or \\x93NUMPY for a .npy shard); \(hint)"
        case let .unsupportedVersion(path, found, expected):
            return "unsupported version \(found) in token shard '\(path)' (expected \(expected)); \(hint)"
        case let .badHeader(path, reason):
            return "bad token shard header in '\(path)': \(reason); \(hint)"
        case let .unsupportedDType(path, found):
            return "token shard '\(path)' has dtype '\(found)' (expected '<u2', uint16 little-endian); "
                + "save it with np.array(tokens, dtype=np.uint16) or \(hint)"
        case let .badShape(path, shape):
            return "token shard '\(path)' has shape \(shape) (expected a 1-D array (N,)); \(hint)"
        case let .truncated(path, count, expected, actual):
            return "token shard '\(path)' is truncated: header says \(count) tokens (\(expected) bytes) "
                + "but the file has \(actual) bytes; \(hint)"
        case let .trailingBytes(path, count, expected, actual):
            return "token shard '\(path)' has \(actual - expected) trailing bytes: header says \(count) tokens "
                + "(\(expected) bytes) but the file has \(actual) bytes; \(hint)"
        case let .tokenOutOfRange(path, index, token, vocabSize):
            let why = token >= 50257 && vocabSize == 50257 && token < 50304 ? " (a padding row of the 50304-row embedding, never a real token)" : ""
            return "token shard '\(path)' has token id \(token)\(why) at token \(index) (byte offset \(2 * index) of the data), "
                + "outside the model's vocabulary of \(vocabSize); the shard is corrupt or was made with another tokenizer: \(hint)"
        case let .notADirectory(path, kind):
            return "'\(path)' is \(kind), not a directory; --data takes the directory of token shards "
                + "(*_train_*/*_val_* .npy or .bin) that 'gpt prepare' writes"
        }
    }
}

// MARK: - Header

/// The parsed, validated header of a token shard.
public struct ShardHeader: Equatable, Sendable {
    /// Layout detected from the magic.
    public var format: ShardFormat
    /// Number of uint16 tokens after the header.
    public var tokenCount: Int
    /// Byte offset of the first token (1024 for `.bin`, a multiple of 64 for `.npy`).
    public var dataOffset: Int
    /// Total file size implied by the header.
    public var fileSize: Int { dataOffset + 2 * tokenCount }

    /// llm.c token-shard magic (`data_common.py`).
    public static let binMagic: Int32 = 20240520
    /// llm.c token-shard version (uint16 tokens).
    public static let binVersion: Int32 = 1
    /// Number of int32 in an llm.c header.
    public static let binHeaderInts = 256
    static let npyMagic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    /// The header bytes for a shard of `tokenCount` tokens.
    ///
    /// For `.npy` this is exactly what numpy ≥ 1.23's `np.save` writes for a 1-D uint16 array:
    /// `{'descr': '<u2', 'fortran_order': False, 'shape': (N,), }`, 21 − digits(N) spare spaces
    /// (room to grow the shape in place), then spaces and a `\n` so magic + length + header is a
    /// multiple of 64 (a full 64 when it already was).
    /// - Parameters:
    ///   - format: the layout.
    ///   - tokenCount: the number of tokens that will follow.
    /// - Returns: the header, 1024 bytes for `.bin`, a multiple of 64 for `.npy`.
    public static func encode(format: ShardFormat, tokenCount: Int) -> [UInt8] {
        precondition(tokenCount >= 0, "token count \(tokenCount) < 0")
        switch format {
        case .bin:
            precondition(tokenCount <= Int(Int32.max), "llm.c .bin holds at most \(Int32.max) tokens, got \(tokenCount)")
            var ints = [Int32](repeating: 0, count: binHeaderInts)
            ints[0] = binMagic
            ints[1] = binVersion
            ints[2] = Int32(tokenCount)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(4 * binHeaderInts)
            for v in ints { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
            return bytes
        case .npy:
            let shapeDigits = String(tokenCount)
            var dict = "{'descr': '<u2', 'fortran_order': False, 'shape': (\(shapeDigits),), }"
            dict += String(repeating: " ", count: max(0, 21 - shapeDigits.count))
            // numpy: hlen = len(dict) + 1 ('\n'); padlen = 64 - ((10 + hlen) % 64), which is 64, not 0, if aligned.
            let hlen = dict.utf8.count + 1
            let padlen = 64 - ((10 + hlen) % 64)
            let headerLength = hlen + padlen
            var bytes = npyMagic + [1, 0, UInt8(headerLength & 0xFF), UInt8(headerLength >> 8)]
            bytes += Array(dict.utf8)
            bytes += [UInt8](repeating: 0x20, count: padlen)
            bytes.append(0x0A)
            return bytes
        }
    }

    /// The number of leading bytes `parse` needs to see to decode any header it accepts in one go
    /// (npy headers longer than this are read in a second step).
    static let probeBytes = 4096

    /// A parsed header, or the number of leading bytes needed to parse a long npy header.
    enum ParseResult: Equatable { case header(ShardHeader), needMore(Int) }

    /// Parses and validates a header: the one place magic, version, dtype, shape and size are checked.
    /// - Parameters:
    ///   - bytes: the first bytes of the file (if an npy header is longer, `.needMore(n)` is returned).
    ///   - fileSize: the file's size in bytes, checked exactly against the token count.
    ///   - path: the file name, for errors.
    static func parse(_ bytes: UnsafeRawBufferPointer, fileSize: Int, path: String) throws(ShardError) -> ParseResult {
        let tooShort = ShardError.badHeader(path: path, reason: "the file is \(fileSize) bytes, shorter than a header")
        if bytes.count >= 6, npyMagic.indices.allSatisfy({ bytes[$0] == npyMagic[$0] }) {
            return try parseNumpy(bytes, fileSize: fileSize, path: path)
        }
        guard bytes.count >= 4 else { throw tooShort }
        let magic = Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: Int32.self))
        guard magic == binMagic else { throw .badMagic(path: path, found: magic, expected: binMagic) }
        guard bytes.count >= 4 * binHeaderInts else { throw tooShort }
        let version = Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: Int32.self))
        guard version == binVersion else {
            throw .unsupportedVersion(path: path, found: Int(version), expected: Int(binVersion))
        }
        let count = Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: Int32.self)))
        guard count >= 0 else { throw .badHeader(path: path, reason: "negative token count \(count)") }
        let header = ShardHeader(format: .bin, tokenCount: count, dataOffset: 4 * binHeaderInts)
        try header.checkSize(fileSize, path: path)
        return .header(header)
    }

    private static func parseNumpy(_ bytes: UnsafeRawBufferPointer, fileSize: Int, path: String) throws(ShardError) -> ParseResult {
        let tooShort = ShardError.badHeader(path: path, reason: "the file (\(fileSize) bytes) ends inside the .npy header")
        guard bytes.count >= 8 else { throw tooShort }
        let major = Int(bytes[6])
        let lengthBytes: Int
        switch major {
        case 1: lengthBytes = 2  // uint16 header length
        case 2, 3: lengthBytes = 4  // uint32 header length (3.0: utf-8 header)
        default: throw .unsupportedVersion(path: path, found: major, expected: 1)
        }
        // numpy itself only reads versions 1.0, 2.0 and 3.0.
        guard bytes[7] == 0 else { throw .badHeader(path: path, reason: "numpy format version \(major).\(bytes[7]) (numpy writes \(major).0)") }
        guard bytes.count >= 8 + lengthBytes else { throw tooShort }
        var headerLength = 0
        for i in 0..<lengthBytes { headerLength |= Int(bytes[8 + i]) << (8 * i) }
        let dataOffset = 8 + lengthBytes + headerLength
        if dataOffset > bytes.count {
            guard dataOffset <= fileSize else { throw tooShort }
            return .needMore(dataOffset)
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(8 + lengthBytes)..<dataOffset]), as: UTF8.self)
        let dict: NumpyHeaderDict
        do {
            dict = try NumpyHeaderDict(parsing: text)
        } catch {
            throw .badHeader(path: path, reason: error.reason)
        }
        guard let descr = dict.descr else { throw .badHeader(path: path, reason: "no 'descr' key") }
        guard let shape = dict.shape else { throw .badHeader(path: path, reason: "no 'shape' key") }
        // '<u2' is what np.save writes for uint16 on every platform ('|u1' style markers only apply to 1 byte).
        guard descr == "<u2" else { throw .unsupportedDType(path: path, found: descr) }
        // fortran_order is irrelevant for a 1-D array, so either value is accepted.
        guard shape.count == 1 else {
            throw .badShape(path: path, shape: "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")"))
        }
        let header = ShardHeader(format: .npy, tokenCount: shape[0], dataOffset: dataOffset)
        try header.checkSize(fileSize, path: path)
        return .header(header)
    }

    /// Size check shared by both layouts: exact, like llm.c's dataloader.
    func checkSize(_ actual: Int, path: String) throws(ShardError) {
        let expected = fileSize
        if actual < expected {
            throw .truncated(path: path, tokenCount: tokenCount, expectedBytes: expected, actualBytes: actual)
        }
        if actual > expected {
            throw .trailingBytes(path: path, tokenCount: tokenCount, expectedBytes: expected, actualBytes: actual)
        }
    }
}

// MARK: - numpy header dictionary

/// The subset of Python literal syntax np.save writes in a header:
/// `{'descr': '<u2', 'fortran_order': False, 'shape': (12,), }`. Unknown keys are skipped.
struct NumpyHeaderDict {
    struct ParseError: Error { var reason: String }

    var descr: String?
    var fortranOrder: Bool?
    var shape: [Int]?

    init(parsing text: String) throws(ParseError) {
        var s = Substring(text)
        func skipSpace() { s = s.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }) }
        func expect(_ c: Character) throws(ParseError) {
            skipSpace()
            guard s.first == c else { throw ParseError(reason: "expected '\(c)' at '\(s.prefix(16))'") }
            s.removeFirst()
        }
        func string() throws(ParseError) -> String {
            skipSpace()
            guard let q = s.first, q == "'" || q == "\"" else { throw ParseError(reason: "expected a string at '\(s.prefix(16))'") }
            s.removeFirst()
            guard let end = s.firstIndex(of: q) else { throw ParseError(reason: "unterminated string") }
            let value = String(s[..<end])
            s = s[s.index(after: end)...]
            return value
        }
        func integer() throws(ParseError) -> Int {
            skipSpace()
            let digits = s.prefix(while: { $0.isASCII && $0.isNumber })
            guard let v = Int(digits) else { throw ParseError(reason: "expected an integer at '\(s.prefix(16))'") }
            s = s.dropFirst(digits.count)
            // Python 2 era files may write 12L.
            if s.first == "L" { s.removeFirst() }
            return v
        }

        try expect("{")
        while true {
            skipSpace()
            if s.first == "}" { break }
            let key = try string()
            try expect(":")
            skipSpace()
            switch key {
            case "descr":
                guard s.first == "'" || s.first == "\"" else {
                    throw ParseError(reason: "'descr' is not a simple dtype string (structured arrays are not token shards)")
                }
                descr = try string()
            case "fortran_order":
                if s.hasPrefix("True") { fortranOrder = true; s = s.dropFirst(4) }
                else if s.hasPrefix("False") { fortranOrder = false; s = s.dropFirst(5) }
                else { throw ParseError(reason: "'fortran_order' is not True or False") }
            case "shape":
                try expect("(")
                var dims: [Int] = []
                while true {
                    skipSpace()
                    if s.first == ")" { s.removeFirst(); break }
                    dims.append(try integer())
                    skipSpace()
                    if s.first == "," { s.removeFirst() }
                }
                shape = dims
            default:
                throw ParseError(reason: "unexpected key '\(key)'")
            }
            skipSpace()
            if s.first == "," { s.removeFirst() } else { skipSpace(); guard s.first == "}" else {
                throw ParseError(reason: "expected ',' or '}' at '\(s.prefix(16))'")
            } }
        }
        // np.save pads with spaces and a final newline; anything else is corruption.
        s.removeFirst()
        skipSpace()
        guard s.isEmpty else { throw ParseError(reason: "unexpected text after the header dictionary: '\(s.prefix(16))'") }
    }
}

// MARK: - Reading and writing

/// Reads and writes token shards (`.npy` or `.bin`, detected by magic when reading).
public enum TokenShard {
    /// The file name fineweb.py and llm.c use: `NAME_val_000000.npy`, `NAME_train_000001.bin`, ...
    /// - Parameters:
    ///   - name: the dataset prefix (`edufineweb`, `shakespeare`).
    ///   - split: `.val` for shard 0, `.train` after it.
    ///   - index: the shard index, printed with 6 digits.
    ///   - format: picks the extension.
    public static func fileName(name: String, split: DatasetSplit, index: Int, format: ShardFormat) -> String {
        let digits = String(index)
        let padded = String(repeating: "0", count: max(0, 6 - digits.count)) + digits
        return "\(name)_\(split.rawValue)_\(padded).\(format.fileExtension)"
    }

    /// The shard files of one split in `directory`, sorted by name, like build-nanogpt's DataLoaderLite
    /// (`[s for s in os.listdir(root) if split in s]`, but matching `_train_`/`_val_` and the extension).
    /// - Parameters:
    ///   - directory: the folder `gpt prepare` wrote.
    ///   - split: which split.
    ///   - name: only files starting with `name_`; `nil` for any prefix.
    /// - Returns: full paths, sorted.
    public static func list(directory: String, split: DatasetSplit, name: String? = nil) throws -> [String] {
        switch FileKind(path: directory) {
        case .directory: break
        case .missing: throw ShardError.cannotOpen(path: directory, reason: "no such directory")
        case .inaccessible(let reason): throw ShardError.cannotOpen(path: directory, reason: reason)
        case let kind: throw ShardError.notADirectory(path: directory, kind: kind.description)
        }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ShardError.cannotOpen(path: directory, reason: "cannot list directory (\((error as NSError).localizedDescription))")
        }
        let marker = "_\(split.rawValue)_"
        let dir = directory.hasSuffix("/") ? directory : directory + "/"
        return entries.filter { entry in
            guard !entry.hasPrefix("."), entry.contains(marker),
                  entry.hasSuffix(".npy") || entry.hasSuffix(".bin") else { return false }
            if let name { return entry.hasPrefix(name + marker) }
            return true
        }.sorted().map { dir + $0 }
    }

    /// Reads and validates a shard's header only (cheap: at most a few KB are read).
    /// - Parameter path: the shard file.
    /// - Returns: the layout, token count and data offset.
    public static func header(path: String) throws(ShardError) -> ShardHeader {
        let file = try open(path)
        return try header(of: file, path: path).header
    }

    /// The number of tokens in a shard, from its header (the file size is checked too).
    public static func tokenCount(path: String) throws(ShardError) -> Int {
        try header(path: path).tokenCount
    }

    /// Reads a whole shard.
    /// - Parameter path: a `.npy` or `.bin` shard (layout detected by magic).
    /// - Returns: the tokens.
    public static func read(path: String) throws(ShardError) -> [UInt16] {
        let file = try open(path)
        let header = try header(of: file, path: path).header
        let count = header.tokenCount
        var failure: POSIXFailure?
        var got = 0
        let tokens = [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(POSIXFailure) {
                got = try file.read(into: UnsafeMutableRawPointer(buffer.baseAddress!), count: 2 * count, at: header.dataOffset)
            } catch {
                failure = error
            }
            // On a short read (the file shrank since fstat) zero the rest; the error below discards it.
            if got < 2 * count {
                UnsafeMutableRawPointer(buffer.baseAddress!).advanced(by: got).initializeMemory(as: UInt8.self, repeating: 0, count: 2 * count - got)
            }
            initialized = count
        }
        if let failure { throw .ioFailed(path: path, reason: failure.reason) }
        if got < 2 * count {
            throw .truncated(path: path, tokenCount: count, expectedBytes: header.fileSize, actualBytes: header.dataOffset + got)
        }
        #if _endian(big)
        return tokens.map { UInt16(littleEndian: $0) }
        #else
        return tokens
        #endif
    }

    /// Checks that every token of a shard is below `vocabSize` (one pass for the maximum; the
    /// position is searched only when it is too large).
    /// - Parameters:
    ///   - tokens: the shard's tokens.
    ///   - vocabSize: the model's vocabulary (50257 for GPT-2; ids 50257...50303 are padding rows).
    ///   - path: the shard, for the message.
    /// - Throws: `ShardError.tokenOutOfRange` naming the shard, the token's index and its id.
    public static func checkTokens(_ tokens: UnsafeBufferPointer<UInt16>, vocabSize: Int, path: String) throws(ShardError) {
        guard vocabSize <= Int(UInt16.max) else { return }   // every uint16 id fits
        var m: UInt16 = 0
        for t in tokens { m = Swift.max(m, t) }
        guard Int(m) >= vocabSize else { return }
        let i = tokens.firstIndex { Int($0) >= vocabSize }!
        throw .tokenOutOfRange(path: path, index: i, token: Int(tokens[i]), vocabSize: vocabSize)
    }

    /// Writes a shard atomically: to a temporary file beside it, fsync, then rename to `path`.
    /// A failure removes the temporary file and leaves `path` as it was.
    /// - Parameters:
    ///   - tokens: the token ids.
    ///   - path: the final file name (its extension is not checked against `format`).
    ///   - format: `.npy` (byte-identical to np.save) or `.bin` (llm.c).
    public static func write(_ tokens: UnsafeBufferPointer<UInt16>, to path: String, format: ShardFormat) throws(ShardError) {
        let header = ShardHeader.encode(format: format, tokenCount: tokens.count)
        do {
            try AtomicOutputFile.write(to: path) { file in
                try file.write(header)
                if let base = tokens.baseAddress, !tokens.isEmpty {
                    #if _endian(big)
                    var le: [UInt8] = []
                    le.reserveCapacity(2 * tokens.count)
                    for t in tokens { le.append(UInt8(t & 0xFF)); le.append(UInt8(t >> 8)) }
                    try file.write(le)
                    #else
                    try file.write(UnsafeRawPointer(base), count: 2 * tokens.count)
                    #endif
                }
            }
        } catch FormatWriteError.cannotCreate(_, let reason) {
            throw .cannotOpen(path: path, reason: "cannot create a temporary file beside it: \(reason)")
        } catch let error as FormatWriteError {
            throw .ioFailed(path: path, reason: error.localizedDescription)
        } catch {
            throw .ioFailed(path: path, reason: "\(error)")
        }
    }

    /// Writes a shard atomically (see `write(_:to:format:)` for the buffer form).
    public static func write(_ tokens: [UInt16], to path: String, format: ShardFormat) throws(ShardError) {
        var failure: ShardError?
        tokens.withUnsafeBufferPointer { b in
            do throws(ShardError) { try write(b, to: path, format: format) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    // MARK: internals

    static func open(_ path: String) throws(ShardError) -> InputFile {
        // Opening a FIFO blocks until a writer appears: say what the path is instead.
        switch FileKind(path: path) {
        case .fifo, .socket, .characterDevice, .blockDevice:
            throw .cannotOpen(path: path, reason: FileKind.regularFileProblem(path) ?? "not a regular file")
        default:
            break
        }
        do {
            return try InputFile(path: path)
        } catch {
            throw .cannotOpen(path: path, reason: error.reason)
        }
    }

    /// Reads enough of the file to parse the header, validates it against the file size.
    static func header(of file: InputFile, path: String) throws(ShardError) -> (header: ShardHeader, fileSize: Int) {
        do {
            let size = try file.size()
            var want = min(size, ShardHeader.probeBytes)
            while true {
                var bytes = [UInt8](repeating: 0, count: want)
                let got = try bytes.withUnsafeMutableBytes { (b) throws(POSIXFailure) in
                    try file.read(into: b.baseAddress!, count: want, at: 0)
                }
                let result = try bytes.withUnsafeBytes { (b) throws(ShardError) in
                    try ShardHeader.parse(UnsafeRawBufferPointer(rebasing: b[..<got]), fileSize: size, path: path)
                }
                switch result {
                case let .header(h): return (h, size)
                case let .needMore(n):
                    guard n > want else { throw ShardError.badHeader(path: path, reason: "header length") }
                    want = n
                }
            }
        } catch let error as ShardError {
            throw error
        } catch let error as POSIXFailure {
            throw .ioFailed(path: path, reason: error.reason)
        } catch {
            throw .ioFailed(path: path, reason: "\(error)")
        }
    }
}

// MARK: - Memory-mapped shard

/// A read-only memory map of a validated token shard, for data loaders that should not copy
/// 100M-token shards into memory. Pages are loaded on demand and shared with the page cache.
public final class MappedTokenShard: @unchecked Sendable {
    /// The shard file.
    public let path: String
    /// Its validated header.
    public let header: ShardHeader
    private let base: UnsafeMutableRawPointer?
    private let mappedBytes: Int

    /// The number of tokens.
    public var count: Int { header.tokenCount }

    /// Maps `path` after validating its header and size.
    /// - Parameter path: a `.npy` or `.bin` shard.
    public init(path: String) throws(ShardError) {
        let file = try TokenShard.open(path)
        let (header, size) = try TokenShard.header(of: file, path: path)
        self.path = path
        self.header = header
        mappedBytes = size
        #if _endian(big)
        throw .ioFailed(path: path, reason: "memory-mapped shards need a little-endian host; use TokenShard.read")
        #endif
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, file.fd, 0)
        guard let p, p != MAP_FAILED else {
            throw .ioFailed(path: path, reason: "mmap: " + String(cString: strerror(errno)))
        }
        base = p
    }

    deinit {
        if let base { munmap(base, mappedBytes) }
    }

    /// Calls `body` with the tokens (valid only inside `body`).
    public func withTokens<R>(_ body: (UnsafeBufferPointer<UInt16>) throws -> R) rethrows -> R {
        // dataOffset is 1024 or a multiple of 64 and mmap is page-aligned, so the pointer is aligned.
        let start = base!.advanced(by: header.dataOffset).assumingMemoryBound(to: UInt16.self)
        return try body(UnsafeBufferPointer(start: start, count: header.tokenCount))
    }

    /// Checks that every token is below `vocabSize` (see `TokenShard.checkTokens`).
    /// - Throws: `ShardError.tokenOutOfRange` naming the shard, the token's index and its id.
    public func checkTokens(vocabSize: Int) throws(ShardError) {
        var failure: ShardError?
        withTokens { t in
            do throws(ShardError) { try TokenShard.checkTokens(t, vocabSize: vocabSize, path: path) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Token `i` (bounds-checked).
    public subscript(i: Int) -> UInt16 {
        precondition(i >= 0 && i < count, "token index \(i) out of range 0..<\(count) in '\(path)'")
        return base!.load(fromByteOffset: header.dataOffset + 2 * i, as: UInt16.self)
    }
}
