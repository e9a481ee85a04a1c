// The streams `DocumentReader` reads one input with: a text file (one document, cut into pieces at
// safe boundaries while streaming), a JSONL file (one document per line, parsed on the encoding
// threads), and what they yield (`RawItem`). Parquet files have their own stream (ParquetDocumentStream).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - Streams

/// What a stream yields: a piece of a text file, a raw JSONL line (one document), or a span of a
/// Parquet string value (a document or a piece of one).
enum RawItem: Sendable {
    case piece(DocumentPiece)
    case jsonLine(JSONLine)
    case span(TextSpan)
}

/// One non-blank JSONL line, not yet validated or parsed.
struct JSONLine: Sendable {
    /// Where `Line` finds the field name.
    static let fieldKey = CodingUserInfoKey(rawValue: "gpt2.jsonl.field")!

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private struct Line: Decodable {
        var text: String
        init(from decoder: Decoder) throws {
            let field = decoder.userInfo[JSONLine.fieldKey] as? String ?? "text"
            text = try decoder.container(keyedBy: AnyKey.self).decode(String.self, forKey: AnyKey(stringValue: field))
        }
    }

    /// The line without its '\n'.
    var bytes: [UInt8]
    /// Display name of the file.
    var path: String
    /// 1-based line number.
    var line: Int
    /// Byte offset of the line in the file.
    var fileOffset: Int

    /// Validates the line and returns the UTF-8 of its string field `field`.
    func text(field: String = "text", decoder: JSONDecoder = JSONDecoder()) throws(DocumentError) -> [UInt8] {
        let utf8 = bytes.withUnsafeBufferPointer { UTF8Validator.check($0) }
        switch utf8 {
        case .valid: break
        case let .incomplete(at), let .invalid(at):
            throw .invalidUTF8(path: path, offset: fileOffset + at, line: line)
        }
        decoder.userInfo[JSONLine.fieldKey] = field
        do {
            return Array(try decoder.decode(Line.self, from: Data(bytes)).text.utf8)
        } catch let error as DecodingError {
            throw .badJSONLine(path: path, line: line, reason: JSONLine.describe(error, field: field), field: field)
        } catch {
            throw .badJSONLine(path: path, line: line, reason: "invalid JSON", field: field)
        }
    }

    private static func describe(_ error: DecodingError, field: String) -> String {
        switch error {
        case .keyNotFound: return "no \"\(field)\" field"
        case let .typeMismatch(_, context), let .valueNotFound(_, context):
            return context.codingPath.isEmpty ? "not a JSON object" : "\"\(field)\" is not a string"
        case .dataCorrupted: return "invalid JSON"
        @unknown default: return "invalid JSON"
        }
    }
}

/// What one `PieceStream.next` call read besides the item it returns.
struct StreamCounters {
    /// Input bytes read.
    var bytesRead = 0
    /// Null rows skipped (Parquet).
    var nullRows = 0
}

/// One open input that yields items.
protocol PieceStream: AnyObject {
    func next(_ counters: inout StreamCounters) throws(DocumentError) -> RawItem?
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
final class TextStream: PieceStream {
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

    func next(_ counters: inout StreamCounters) throws(DocumentError) -> RawItem? {
        while true {
            // Keep twice the piece size buffered so a boundary can be found after the target too.
            if !reader.eof, pending.count < 2 * pieceBytes {
                counters.bytesRead += try reader.read(into: &pending, count: pieceBytes)
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
                        counters.bytesRead += try reader.read(into: &pending, count: pieceBytes)
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
        // Regular files that start with Parquet's magic were opened as Parquet; a stream cannot be.
        if pendingOffset == 0, validated == 0, pending.starts(with: ParquetDocumentStream.magic) {
            throw .parquet(.notSeekable(path: reader.name))
        }
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
final class JSONLStream: PieceStream {
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

    func next(_ counters: inout StreamCounters) throws(DocumentError) -> RawItem? {
        while let (lineStart, lineEnd) = try nextLine(&counters) {
            lineNumber += 1
            let line = buffer[lineStart..<lineEnd]
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }  // blank line
            return .jsonLine(JSONLine(bytes: Array(line), path: reader.name, line: lineNumber, fileOffset: bufferOffset + lineStart))
        }
        return nil
    }

    /// The next line's range in `buffer` (without the '\n'), reading more as needed; nil at end of file.
    private func nextLine(_ counters: inout StreamCounters) throws(DocumentError) -> (Int, Int)? {
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
            counters.bytesRead += try reader.read(into: &buffer, count: max(pieceBytes, 1 << 16))
        }
    }
}

