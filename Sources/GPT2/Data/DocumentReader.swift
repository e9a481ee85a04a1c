// Streams documents out of the inputs of `gpt prepare`, in bounded memory, as pieces of valid UTF-8
// that can be tokenized independently (and in parallel) with exactly the ids the whole document gets.
// Inputs: plain-text files (one document each), JSONL (one {"text": ...} object per line, as
// FineWeb-Edu / OpenWebText exports are), Parquet files (one document per row of a string column,
// as FineWeb-Edu and OpenWebText are on the Hugging Face hub), directories of them, "-" for standard
// input, and files that arrive while preparation runs (`PrepareInputQueue`).
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
    /// One JSON object per line with a string field (`"text"` by default); each line is a document. Blank lines are skipped.
    case jsonl
    /// One document per non-null row of a string column (`text` by default).
    case parquet

    /// The format a file name implies: `.jsonl` and `.json` are JSONL, `.parquet` Parquet, everything
    /// else is text (a regular file that starts and ends with Parquet's `PAR1` magic is read as Parquet too).
    public static func forPath(_ path: String) -> InputFormat {
        let lower = path.lowercased()
        if lower.hasSuffix(".parquet") { return .parquet }
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
    /// A JSONL line that is not a JSON object with a string field named `field`.
    case badJSONLine(path: String, line: Int, reason: String, field: String = "text")
    /// A JSONL line longer than `DocumentReader.maxLineBytes`.
    case lineTooLong(path: String, line: Int, limit: Int)
    /// A Parquet file that cannot be read.
    case parquet(ParquetError)

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
        case let .badJSONLine(path, line, reason, field):
            return "bad JSONL line \(line) in '\(path)': \(reason) (expected an object with a string \"\(field)\" field)"
        case let .lineTooLong(path, line, limit):
            return "line \(line) of '\(path)' is longer than \(limit) bytes; is it really JSONL?"
        case let .parquet(error):
            return error.errorDescription
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
/// - A Parquet file yields one document per non-null row of the string column `column`, row group
///   by row group (one row group and a few decoded ahead in memory, decoded on `threads` threads);
///   null rows are skipped and counted in `nullRows`. Long strings are cut into pieces the same way.
/// - A directory is expanded recursively to its regular files sorted by full path (byte order);
///   hidden files and folders (`.name`) are skipped, and symbolic links to directories are not followed.
/// - `-` is standard input, read as `stdinFormat` (text unless told it is JSONL); so is a pipe or
///   FIFO whose name does not say (e.g. `<(zstdcat f.jsonl.zst)`, i.e. /dev/fd/63).
///
/// All input must be valid UTF-8; errors carry the file and byte offset (or row).
public final class DocumentReader {
    /// Longest JSONL line accepted.
    public static let maxLineBytes = 1 << 30

    /// The expanded input files, in reading order (for a queue: those handed out so far).
    public private(set) var sources: [InputSource]
    /// Target piece size in bytes.
    public let pieceBytes: Int
    /// The JSONL field / Parquet column that holds the text.
    public let column: String
    /// Input bytes consumed so far (all files; for Parquet, the column chunks and footers read).
    public private(set) var bytesRead = 0
    /// Documents started so far.
    public private(set) var documents = 0
    /// Null Parquet rows skipped so far.
    public private(set) var nullRows = 0

    private let stdinFormat: InputFormat
    private let threads: Int
    private let queue: (any PrepareInputQueue)?
    private var queueFinished = false
    /// For queue inputs: the index in `sources` of the last file of each queued path, and that path.
    private var queuedPathEnds: [Int: String] = [:]
    private var sourceIndex = 0
    private var stream: PieceStream?
    private var queued: [DocumentPiece] = []  // pieces of the current JSONL or Parquet document, reversed

    /// Expands `inputs` (files, directories, `-`) and prepares to read them.
    /// - Parameters:
    ///   - inputs: paths; directories are expanded recursively; `-` is standard input.
    ///   - stdinFormat: how to parse standard input.
    ///   - pieceBytes: target size of the pieces handed to the tokenizer (default 1 MiB).
    ///   - column: the JSONL field / Parquet column holding the text (default `text`).
    ///   - threads: threads that decode Parquet row groups ahead of the reader (1: on the caller's thread).
    public init(inputs: [String], stdinFormat: InputFormat = .text, pieceBytes: Int = 1 << 20,
                column: String = "text", threads: Int = 1) throws(DocumentError) {
        precondition(pieceBytes >= 16, "pieceBytes \(pieceBytes) < 16")
        sources = try DocumentReader.resolve(inputs: inputs, stdinFormat: stdinFormat)
        self.pieceBytes = pieceBytes
        self.stdinFormat = stdinFormat
        self.column = column
        self.threads = max(1, threads)
        queue = nil
    }

    /// Reads the files `queue` hands out, in order, resolving each as `init(inputs:)` would; `done` is
    /// called once a file (all files of a directory) has been read.
    init(queue: any PrepareInputQueue, stdinFormat: InputFormat, pieceBytes: Int, column: String, threads: Int) {
        precondition(pieceBytes >= 16, "pieceBytes \(pieceBytes) < 16")
        sources = []
        self.pieceBytes = pieceBytes
        self.stdinFormat = stdinFormat
        self.column = column
        self.threads = max(1, threads)
        self.queue = queue
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
                var format = InputFormat.forPath(input)
                // A pipe such as <(zstdcat f.jsonl.zst) has no telling name: it is read like stdin.
                if format == .text, (st.st_mode & S_IFMT) == S_IFIFO || (st.st_mode & S_IFMT) == S_IFCHR { format = stdinFormat }
                result.append(InputSource(path: input, format: format))
            }
        }
        return result
    }

    /// The next piece, or nil after the last document of the last input.
    public func next() throws(DocumentError) -> DocumentPiece? {
        while true {
            if let piece = queued.popLast() { return piece }
            let item: RawItem?
            do {
                item = try nextItem()
            } catch let error as DocumentError {
                throw error
            } catch {
                throw .readFailed(path: "<input queue>", reason: "\(error)")
            }
            switch item {
            case nil:
                return nil
            case let .piece(piece)?:
                return piece
            case let .jsonLine(line)?:
                // Cut a long document like a text file's, so callers see bounded pieces either way.
                let parts = PieceSplitter.split(try line.text(field: column), pieceBytes: pieceBytes)
                queued = parts.enumerated().reversed().map { DocumentPiece(bytes: $0.element, startsDocument: $0.offset == 0) }
            case let .span(span)?:
                return DocumentPiece(bytes: try span.validatedBytes(), startsDocument: span.startsDocument)
            }
        }
    }

    /// The next unit of work, in input order: a text piece, a JSONL line whose parsing is left to the
    /// caller (so `DatasetPreparer` parses JSON on its worker threads), or a span of a Parquet value
    /// (validated by the caller). Nil at the end. Errors are `DocumentError`s, or what the queue threw.
    func nextItem() throws -> RawItem? {
        switch try step(mayWait: true) {
        case let .item(item): return item
        case .end, .waitingForQueue: return nil
        }
    }

    /// What `step` found.
    enum Step {
        case item(RawItem)
        /// The files handed out so far are read and the queue would have to be asked (only when `mayWait` is false).
        case waitingForQueue
        case end
    }

    /// The next item; with `mayWait` false, stops instead of asking a queue that may block for its
    /// next file (so a caller can tokenize what it holds first). A fixed list of inputs never blocks.
    func step(mayWait: Bool) throws -> Step {
        while true {
            if stream == nil {
                if sourceIndex >= sources.count {
                    if !mayWait, let queue, !queueFinished, !(queue is FixedInputQueue) { return .waitingForQueue }
                    guard try pullFromQueue() else { return .end }
                    continue
                }
                stream = try openStream(sources[sourceIndex])
            }
            var counters = StreamCounters()
            let item = try stream!.next(&counters)
            bytesRead += counters.bytesRead
            nullRows += counters.nullRows
            if let item {
                switch item {
                case let .piece(p): if p.startsDocument { documents += 1 }
                case .jsonLine: documents += 1
                case let .span(s): if s.startsDocument { documents += 1 }
                }
                return .item(item)
            }
            stream = nil  // closes the file before the queue may delete it
            if let path = queuedPathEnds.removeValue(forKey: sourceIndex) { queue?.done(path) }
            sourceIndex += 1
        }
    }

    /// The file being read now (nil before the first and after the last).
    public var currentSource: InputSource? {
        sourceIndex < sources.count ? sources[sourceIndex] : nil
    }

    /// Asks the queue for its next path and resolves it; false at the end.
    private func pullFromQueue() throws -> Bool {
        guard let queue, !queueFinished else { return false }
        guard let path = try queue.next() else {
            queueFinished = true
            return false
        }
        let resolved = try DocumentReader.resolve(inputs: [path], stdinFormat: stdinFormat)
        sources += resolved
        queuedPathEnds[sources.count - 1] = path
        return true
    }

    private func openStream(_ source: InputSource) throws(DocumentError) -> PieceStream {
        switch source.format {
        case .text:
            if source.path != "-", ParquetDocumentStream.looksLikeParquet(source.path) {
                return try ParquetDocumentStream(source: source, column: column, pieceBytes: pieceBytes, threads: threads)
            }
            return try TextStream(source: source, pieceBytes: pieceBytes)
        case .jsonl:
            return try JSONLStream(source: source, pieceBytes: pieceBytes)
        case .parquet:
            return try ParquetDocumentStream(source: source, column: column, pieceBytes: pieceBytes, threads: threads)
        }
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
        for ext in [".arrow", ".feather"] where lower.hasSuffix(ext) {
            throw .unsupportedInput(path: path, hint: "\(ext) files are not read; write them as Parquet "
                + "(pyarrow.parquet.write_table) or export the text column to JSONL first")
        }
    }
}
