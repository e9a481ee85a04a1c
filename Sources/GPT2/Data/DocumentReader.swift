// Streams documents out of the inputs of `gpt prepare`, in bounded memory, as pieces of valid UTF-8
// that can be tokenized independently (and in parallel) with exactly the ids the whole document gets.
// Inputs: plain-text files (one document each), JSONL (one {"text": ...} object per line, as
// FineWeb-Edu / OpenWebText exports are), directories of them, and "-" for standard input.
// Safe cuts: GPT-2's pre-tokenizer regex never joins across them (see `PieceSplitter`), so
// encode(a + b) == encode(a) + encode(b) when the cut between a and b is safe.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// How an input file is parsed.
public enum InputFormat: String, CaseIterable, Sendable {
    /// The whole file is one document.
    case text
    /// One JSON object per line with a string field `"text"`; each line is a document. Blank lines are skipped.
    case jsonl

    /// The format a file name implies: `.jsonl` and `.json` are JSONL, everything else is text.
    public static func forPath(_ path: String) -> InputFormat {
        let lower = path.lowercased()
        return lower.hasSuffix(".jsonl") || lower.hasSuffix(".json") ? .jsonl : .text
    }
}

/// One input file after directories are expanded.
public struct InputSource: Equatable, Sendable {
    /// The file's path, or `-` for standard input.
    public var path: String
    /// How it is parsed.
    public var format: InputFormat

    /// `<stdin>` for `-`, the path otherwise (used in error messages).
    public var displayName: String { path == "-" ? "<stdin>" : path }
}

/// A piece of a document: valid UTF-8, cut at a safe boundary.
public struct DocumentPiece: Sendable {
    /// UTF-8 text.
    public var bytes: [UInt8]
    /// True for the first piece of each document (where `<|endoftext|>` goes).
    public var startsDocument: Bool
}

/// Errors reading inputs. Every message names the file (and the byte offset or line where it applies).
public enum DocumentError: LocalizedError, Equatable {
    /// `prepare` was given no inputs.
    case noInputs
    /// A directory holds no (non-hidden) files.
    case emptyDirectory(path: String)
    /// The file is missing, unreadable or not a regular file.
    case cannotOpen(path: String, reason: String)
    /// A read failed midway.
    case readFailed(path: String, reason: String)
    /// Compressed or columnar input, which `prepare` does not decode.
    case unsupportedInput(path: String, hint: String)
    /// Invalid UTF-8 at a byte offset of the file (`line` is set for JSONL).
    case invalidUTF8(path: String, offset: Int, line: Int?)
    /// A JSONL line that is not a JSON object with a string `"text"` field.
    case badJSONLine(path: String, line: Int, reason: String)
    /// A JSONL line longer than `DocumentReader.maxLineBytes`.
    case lineTooLong(path: String, line: Int, limit: Int)

    public var errorDescription: String? {
        switch self {
        case .noInputs:
            return "no input files given"
        case let .emptyDirectory(path):
            return "no input files found under '\(path)' (hidden files are skipped)"
        case let .cannotOpen(path, reason):
            return "cannot open input '\(path)': \(reason)"
        case let .readFailed(path, reason):
            return "cannot read input '\(path)': \(reason)"
        case let .unsupportedInput(path, hint):
            return "unsupported input '\(path)': \(hint)"
        case let .invalidUTF8(path, offset, line):
            let at = line.map { "line \($0), " } ?? ""
            return "invalid UTF-8 in '\(path)' at \(at)byte offset \(offset); convert it to UTF-8 (e.g. iconv) first"
        case let .badJSONLine(path, line, reason):
            return "bad JSONL line \(line) in '\(path)': \(reason) (expected an object with a string \"text\" field)"
        case let .lineTooLong(path, line, limit):
            return "line \(line) of '\(path)' is longer than \(limit) bytes; is it really JSONL?"
        }
    }
}

// MARK: - Reader

/// Streams the documents of a list of inputs as `DocumentPiece`s, in input order, in bounded memory.
///
/// - A text file is one document, read in blocks and cut into pieces of about `pieceBytes` at safe
///   boundaries (see `PieceSplitter`), so a file of any size is encoded in bounded memory (at most
///   64 × `pieceBytes` buffered). An empty file is an empty document.
/// - A JSONL file yields one document per non-blank line (the line must fit in memory, up to
///   `maxLineBytes`); a long `"text"` is cut into pieces the same way.
/// - A directory is expanded recursively to its regular files sorted by full path (byte order);
///   hidden files and folders (`.name`) are skipped, and symbolic links to directories are not followed.
/// - `-` is standard input, read as `stdinFormat` (text unless told it is JSONL).
///
/// All input must be valid UTF-8; errors carry the file and byte offset.
public final class DocumentReader {
    /// Longest JSONL line accepted.
    public static let maxLineBytes = 1 << 30

    /// The expanded input files, in reading order.
    public let sources: [InputSource]
    /// Target piece size in bytes.
    public let pieceBytes: Int
    /// Input bytes consumed so far (all files).
    public private(set) var bytesRead = 0
    /// Documents started so far.
    public private(set) var documents = 0

    private var sourceIndex = 0
    private var stream: PieceStream?
    private var queued: [DocumentPiece] = []  // pieces of the current JSONL document, reversed

    /// Expands `inputs` (files, directories, `-`) and prepares to read them.
    /// - Parameters:
    ///   - inputs: paths; directories are expanded recursively; `-` is standard input.
    ///   - stdinFormat: how to parse standard input.
    ///   - pieceBytes: target size of the pieces handed to the tokenizer (default 1 MiB).
    public init(inputs: [String], stdinFormat: InputFormat = .text, pieceBytes: Int = 1 << 20) throws(DocumentError) {
        precondition(pieceBytes >= 16, "pieceBytes \(pieceBytes) < 16")
        sources = try DocumentReader.resolve(inputs: inputs, stdinFormat: stdinFormat)
        self.pieceBytes = pieceBytes
    }

    /// Expands directories and checks that every input exists and is supported (nothing is read yet).
    /// - Parameters:
    ///   - inputs: paths; `-` is standard input.
    ///   - stdinFormat: the format given to `-`.
    /// - Returns: the files in reading order.
    public static func resolve(inputs: [String], stdinFormat: InputFormat = .text) throws(DocumentError) -> [InputSource] {
        guard !inputs.isEmpty else { throw .noInputs }
        var result: [InputSource] = []
        for input in inputs {
            if input == "-" {
                result.append(InputSource(path: "-", format: stdinFormat))
                continue
            }
            var st = stat()
            guard stat(input, &st) == 0 else {
                throw .cannotOpen(path: input, reason: String(cString: strerror(errno)))
            }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                var files: [String] = []
                try collectFiles(directory: input, into: &files)
                guard !files.isEmpty else { throw .emptyDirectory(path: input) }
                files.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                for file in files {
                    try checkSupported(file)
                    result.append(InputSource(path: file, format: .forPath(file)))
                }
            } else {
                try checkSupported(input)
                result.append(InputSource(path: input, format: .forPath(input)))
            }
        }
        return result
    }

    /// The next piece, or nil after the last document of the last input.
    public func next() throws(DocumentError) -> DocumentPiece? {
        while true {
            if let piece = queued.popLast() { return piece }
            switch try nextItem() {
            case nil:
                return nil
            case let .piece(piece)?:
                return piece
            case let .jsonLine(line)?:
                // Cut a long document like a text file's, so callers see bounded pieces either way.
                let parts = PieceSplitter.split(try line.text(), pieceBytes: pieceBytes)
                queued = parts.enumerated().reversed().map { DocumentPiece(bytes: $0.element, startsDocument: $0.offset == 0) }
            }
        }
    }

    /// The next unit of work, in input order: a text piece, or a JSONL line whose parsing is left to
    /// the caller (so `DatasetPreparer` parses JSON on its worker threads). Nil at the end.
    func nextItem() throws(DocumentError) -> RawItem? {
        while true {
            if stream == nil {
                guard sourceIndex < sources.count else { return nil }
                let source = sources[sourceIndex]
                switch source.format {
                case .text: stream = try TextStream(source: source, pieceBytes: pieceBytes)
                case .jsonl: stream = try JSONLStream(source: source, pieceBytes: pieceBytes)
                }
            }
            if let item = try stream!.next(bytesRead: &bytesRead) {
                switch item {
                case let .piece(p): if p.startsDocument { documents += 1 }
                case .jsonLine: documents += 1
                }
                return item
            }
            stream = nil
            sourceIndex += 1
        }
    }

    /// The file being read now (nil before the first and after the last).
    public var currentSource: InputSource? {
        sourceIndex < sources.count ? sources[sourceIndex] : nil
    }

    // MARK: directory expansion

    private static func collectFiles(directory: String, into files: inout [String]) throws(DocumentError) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .cannotOpen(path: directory, reason: "cannot list directory")
        }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        for name in names where !name.hasPrefix(".") {
            let path = prefix + name
            var st = stat()
            guard lstat(path, &st) == 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try collectFiles(directory: path, into: &files)
            case S_IFREG:
                files.append(path)
            case S_IFLNK:
                // Follow links to files; links to directories are skipped (no cycles).
                var target = stat()
                if stat(path, &target) == 0, (target.st_mode & S_IFMT) == S_IFREG { files.append(path) }
            default:
                break  // sockets, FIFOs, devices
            }
        }
    }

    private static func checkSupported(_ path: String) throws(DocumentError) {
        let lower = path.lowercased()
        for ext in [".gz", ".bz2", ".xz", ".zst", ".zstd", ".lz4", ".zip"] where lower.hasSuffix(ext) {
            throw .unsupportedInput(path: path, hint: "compressed (\(ext)) input is not read; decompress it first, "
                + "or pipe it in: e.g. 'zstdcat FILE | gpt prepare - --stdin-format jsonl'")
        }
        for ext in [".parquet", ".arrow"] where lower.hasSuffix(ext) {
            throw .unsupportedInput(path: path, hint: "\(ext) files are not read; export the \"text\" column to JSONL first")
        }
    }
}

// MARK: - Streams

/// What a stream yields: a piece of a text file, or a raw JSONL line (one document).
enum RawItem: Sendable {
    case piece(DocumentPiece)
    case jsonLine(JSONLine)
}

/// One non-blank JSONL line, not yet validated or parsed.
struct JSONLine: Sendable {
    private struct Line: Decodable { var text: String }

    /// The line without its '\n'.
    var bytes: [UInt8]
    /// Display name of the file.
    var path: String
    /// 1-based line number.
    var line: Int
    /// Byte offset of the line in the file.
    var fileOffset: Int

    /// Validates the line and returns the UTF-8 of its "text" field.
    func text(decoder: JSONDecoder = JSONDecoder()) throws(DocumentError) -> [UInt8] {
        let utf8 = bytes.withUnsafeBufferPointer { UTF8Validator.check($0) }
        switch utf8 {
        case .valid: break
        case let .incomplete(at), let .invalid(at):
            throw .invalidUTF8(path: path, offset: fileOffset + at, line: line)
        }
        do {
            return Array(try decoder.decode(Line.self, from: Data(bytes)).text.utf8)
        } catch let error as DecodingError {
            throw .badJSONLine(path: path, line: line, reason: JSONLine.describe(error))
        } catch {
            throw .badJSONLine(path: path, line: line, reason: "invalid JSON")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound: return "no \"text\" field"
        case let .typeMismatch(_, context), let .valueNotFound(_, context):
            return context.codingPath.isEmpty ? "not a JSON object" : "\"text\" is not a string"
        case .dataCorrupted: return "invalid JSON"
        @unknown default: return "invalid JSON"
        }
    }
}

/// One open input that yields items.
private protocol PieceStream: AnyObject {
    func next(bytesRead: inout Int) throws(DocumentError) -> RawItem?
}

/// Reads blocks from a file descriptor, tracking the file offset, mapping errors to `DocumentError`.
private struct BlockReader {
    let file: InputFile
    let name: String
    var offset = 0  // bytes read so far
    var eof = false

    init(source: InputSource) throws(DocumentError) {
        do {
            file = try InputFile(path: source.path)
        } catch {
            throw .cannotOpen(path: source.displayName, reason: error.reason)
        }
        name = source.displayName
    }

    /// Appends up to `count` bytes to `buffer`; sets `eof` at end of file. Returns the number read.
    mutating func read(into buffer: inout [UInt8], count: Int) throws(DocumentError) -> Int {
        var failure: POSIXFailure?
        // Read into an uninitialized array, then append (a memcpy), rather than zero-filling `buffer`.
        let block = [UInt8](unsafeUninitializedCapacity: count) { b, initialized in
            do throws(POSIXFailure) {
                initialized = try file.read(into: b.baseAddress!, count: count)
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw .readFailed(path: name, reason: failure.reason) }
        if block.count < count { eof = true }
        buffer.append(contentsOf: block)
        offset += block.count
        return block.count
    }
}

/// A text file: one document, cut into pieces at safe boundaries while streaming.
private final class TextStream: PieceStream {
    private var reader: BlockReader
    private let pieceBytes: Int
    /// Largest piece when no safe boundary turns up (see `PieceSplitter`).
    private let maxPieceBytes: Int
    private var pending: [UInt8] = []
    private var pendingOffset = 0  // file offset of pending[0]
    private var validated = 0  // pending[..<validated] is valid UTF-8 ending at a character boundary
    private var emitted = false

    init(source: InputSource, pieceBytes: Int) throws(DocumentError) {
        reader = try BlockReader(source: source)
        self.pieceBytes = pieceBytes
        maxPieceBytes = 64 * pieceBytes
    }

    func next(bytesRead: inout Int) throws(DocumentError) -> RawItem? {
        while true {
            // Keep twice the piece size buffered so a boundary can be found after the target too.
            if !reader.eof, pending.count < 2 * pieceBytes {
                bytesRead += try reader.read(into: &pending, count: pieceBytes)
                try validate()
                continue
            }
            if reader.eof, pending.isEmpty {
                if emitted { return nil }
                emitted = true
                return .piece(DocumentPiece(bytes: [], startsDocument: true))  // an empty file is an empty document
            }
            var cut: Int?
            if reader.eof, pending.count <= pieceBytes {
                cut = pending.count
            } else {
                cut = pending.withUnsafeBufferPointer { PieceSplitter.cut(UnsafeBufferPointer(rebasing: $0[..<validated]), target: pieceBytes) }
                if cut == nil {
                    if reader.eof {
                        cut = pending.count
                    } else if pending.count < maxPieceBytes {
                        bytesRead += try reader.read(into: &pending, count: pieceBytes)
                        try validate()
                        continue
                    } else {
                        cut = validated  // no safe boundary in maxPieceBytes: cut at a character boundary
                    }
                }
            }
            let c = cut!
            let piece = DocumentPiece(bytes: Array(pending[..<c]), startsDocument: !emitted)
            emitted = true
            pending.removeFirst(c)
            pendingOffset += c
            validated -= c
            return .piece(piece)
        }
    }

    /// Extends `validated` over newly read bytes; an incomplete character is fine unless at end of file.
    private func validate() throws(DocumentError) {
        let result = pending.withUnsafeBufferPointer { UTF8Validator.check(UnsafeBufferPointer(rebasing: $0[validated...])) }
        switch result {
        case .valid:
            validated = pending.count
        case let .incomplete(at):
            if reader.eof {
                throw .invalidUTF8(path: reader.name, offset: pendingOffset + validated + at, line: nil)
            }
            validated += at
        case let .invalid(at):
            throw .invalidUTF8(path: reader.name, offset: pendingOffset + validated + at, line: nil)
        }
    }
}

/// A JSONL file: one document per non-blank line.
private final class JSONLStream: PieceStream {
    private var reader: BlockReader
    private let pieceBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0  // first unconsumed byte of buffer
    private var scanned = 0  // buffer[start..<scanned] holds no '\n'
    private var bufferOffset = 0  // file offset of buffer[0]
    private var lineNumber = 0

    init(source: InputSource, pieceBytes: Int) throws(DocumentError) {
        reader = try BlockReader(source: source)
        self.pieceBytes = pieceBytes
    }

    func next(bytesRead: inout Int) throws(DocumentError) -> RawItem? {
        while let (lineStart, lineEnd) = try nextLine(bytesRead: &bytesRead) {
            lineNumber += 1
            let line = buffer[lineStart..<lineEnd]
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }  // blank line
            return .jsonLine(JSONLine(bytes: Array(line), path: reader.name, line: lineNumber, fileOffset: bufferOffset + lineStart))
        }
        return nil
    }

    /// The next line's range in `buffer` (without the '\n'), reading more as needed; nil at end of file.
    private func nextLine(bytesRead: inout Int) throws(DocumentError) -> (Int, Int)? {
        while true {
            let newline = buffer.withUnsafeBufferPointer { b -> Int? in
                guard scanned < b.count else { return nil }
                guard let p = memchr(b.baseAddress! + scanned, 0x0A, b.count - scanned) else { return nil }
                return b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
            }
            if let newline {
                let line = (start, newline)
                start = newline + 1
                scanned = start
                return line
            }
            scanned = buffer.count
            if reader.eof {
                guard start < buffer.count else { return nil }
                let line = (start, buffer.count)
                start = buffer.count
                return line
            }
            // Drop consumed lines before reading more, so memory holds one line plus a block.
            if start > 0 {
                buffer.removeFirst(start)
                bufferOffset += start
                scanned -= start
                start = 0
            }
            if buffer.count > DocumentReader.maxLineBytes {
                throw .lineTooLong(path: reader.name, line: lineNumber + 1, limit: DocumentReader.maxLineBytes)
            }
            bytesRead += try reader.read(into: &buffer, count: max(pieceBytes, 1 << 16))
        }
    }
}

// MARK: - Safe boundaries

/// Where a document may be cut so that encoding the parts separately gives the same ids.
///
/// GPT-2's pre-tokenizer (`'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`)
/// never produces a piece that spans
/// - the position before a space whose neighbours are both printable ASCII non-space (`a| b`): the
///   space only ever starts a piece (` ?X`), and the letter/number/punctuation run before it stops at it;
/// - the position after a `\n` whose neighbours are both printable ASCII non-space (`a\n|b`): that
///   newline is a piece of its own both in the whole text (`\s`) and at the end of a part (`\s++$`).
/// Requiring ASCII neighbours keeps Unicode whitespace (U+00A0, U+3000, ...) out of the argument.
/// A text file with no such boundary in 64 × `pieceBytes` (64 MiB by default; e.g. long runs of text
/// without ASCII spaces or newlines) is cut at a character boundary instead; only there could ids
/// differ from whole-document encoding. JSONL documents are in memory anyway and are never cut unsafely.
enum PieceSplitter {
    @inline(__always)
    static func isGraphic(_ b: UInt8) -> Bool { b >= 0x21 && b <= 0x7E }

    @inline(__always)
    static func isSafe(_ p: UnsafeBufferPointer<UInt8>, _ c: Int) -> Bool {
        // Requires 2 <= c <= p.count - 2.
        if p[c] == 0x20 { return isGraphic(p[c - 1]) && isGraphic(p[c + 1]) }
        return p[c - 1] == 0x0A && isGraphic(p[c - 2]) && isGraphic(p[c])
    }

    /// A safe cut near `target`: the last one in [target/2, target], else the first after target,
    /// else the last before target/2; nil if `p` has none.
    static func cut(_ p: UnsafeBufferPointer<UInt8>, target: Int) -> Int? {
        let hi = p.count - 2
        guard hi >= 2 else { return nil }
        let t = min(target, hi)
        var c = t
        while c >= max(2, target / 2) {
            if isSafe(p, c) { return c }
            c -= 1
        }
        c = t + 1
        while c <= hi {
            if isSafe(p, c) { return c }
            c += 1
        }
        c = min(target / 2 - 1, hi)
        while c >= 2 {
            if isSafe(p, c) { return c }
            c -= 1
        }
        return nil
    }

    /// Cuts an in-memory document into parts of about `pieceBytes` at safe boundaries.
    static func split(_ bytes: [UInt8], pieceBytes: Int) -> [[UInt8]] {
        guard bytes.count > pieceBytes else { return [bytes] }
        var parts: [[UInt8]] = []
        bytes.withUnsafeBufferPointer { all in
            var start = 0
            while all.count - start > pieceBytes {
                let rest = UnsafeBufferPointer(rebasing: all[start...])
                guard let c = cut(rest, target: pieceBytes) else { break }
                parts.append(Array(rest[..<c]))
                start += c
            }
            parts.append(Array(all[start...]))
        }
        return parts
    }
}
