// `DocumentReader`'s stream for a Parquet file: one document per non-null row of the text column,
// in row order. Row groups are decoded ahead on other threads (`RowGroupPrefetcher`), within a
// count and byte budget, and handed out strictly in order, so the output does not depend on timing.
// Values are passed on as spans of the decoded pages (no copy); long values are cut at safe
// boundaries like text files, so one multi-MB document is tokenized on several threads.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A piece of a Parquet string value, shared with the encoding threads (validated there).
struct TextSpan: Sendable {
    let storage: ByteStorage
    let start: Int
    let count: Int
    /// True for the first piece of a value (where `<|endoftext|>` goes).
    let startsDocument: Bool
    let path: String
    let column: String
    /// Row of the value in the file (for errors).
    let row: Int

    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        storage.bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[start..<(start + count)])) }
    }

    /// Nil when the bytes are valid UTF-8, else the error naming the file, column and row.
    func utf8Error() -> DocumentError? {
        switch withBytes({ UTF8Validator.check($0) }) {
        case .valid: return nil
        case .incomplete, .invalid: return .parquet(.invalidUTF8(path: path, column: column, row: row))
        }
    }

    /// A validated copy of the bytes.
    func validatedBytes() throws(DocumentError) -> [UInt8] {
        if let error = utf8Error() { throw error }
        return withBytes { Array($0) }
    }
}

/// Reads one Parquet file's text column for `DocumentReader`.
final class ParquetDocumentStream: PieceStream {
    static let magic: [UInt8] = Array("PAR1".utf8)
    /// Decoded row groups held ahead of the reader, at most (besides the one being read).
    static let prefetchBytes = 256 << 20

    private let file: ParquetFile
    private let column: ParquetColumn
    private let pieceBytes: Int
    private let prefetcher: RowGroupPrefetcher
    private var nextGroup = 0
    private var current: ParquetStrings?
    private var currentFirstRow = 0  // file row of the current row group's row 0
    private var nextFirstRow = 0
    private var valueIndex = 0
    private var valueOffset = 0  // bytes of the current value already handed out
    private var footerCounted = false

    /// True for a regular file that starts with `PAR1` (read as Parquet whatever its name).
    static func looksLikeParquet(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= 4 else { return false }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 4)
        return pread(fd, &head, 4, 0) == 4 && head == magic
    }

    init(source: InputSource, column name: String, pieceBytes: Int, threads: Int) throws(DocumentError) {
        guard source.path != "-" else { throw .parquet(.notSeekable(path: source.displayName)) }
        do throws(ParquetError) {
            file = try ParquetFile(path: source.path)
            column = try file.stringColumn(named: name)
        } catch {
            throw .parquet(error)
        }
        self.pieceBytes = pieceBytes
        let (file, column) = (file, column)
        prefetcher = RowGroupPrefetcher(count: file.rowGroupCount, threads: threads, budget: ParquetDocumentStream.prefetchBytes,
                                        cost: { file.chunkUncompressedBytes(column, rowGroup: $0) },
                                        load: { (i) throws(ParquetError) -> ParquetStrings in try file.readStrings(column, rowGroup: i) })
    }

    func next(_ counters: inout StreamCounters) throws(DocumentError) -> RawItem? {
        if !footerCounted {
            footerCounted = true
            counters.bytesRead += file.footerBytes
        }
        while true {
            if let strings = current, valueIndex < strings.count {
                let span = strings.spans[valueIndex]
                let storage = strings.storages[Int(span.storage)]
                var length = span.count - valueOffset
                if length > pieceBytes {
                    // A long value: cut at a safe boundary near pieceBytes (never elsewhere; none: hand out the rest).
                    let from = span.start + valueOffset
                    let cut = storage.bytes.withUnsafeBufferPointer {
                        PieceSplitter.cut(UnsafeBufferPointer(rebasing: $0[from..<(span.start + span.count)]), target: pieceBytes)
                    }
                    if let cut { length = cut }
                }
                let item = TextSpan(storage: storage, start: span.start + valueOffset, count: length, startsDocument: valueOffset == 0,
                                    path: file.path, column: column.name, row: currentFirstRow + Int(span.row))
                valueOffset += length
                if valueOffset == span.count {
                    valueIndex += 1
                    valueOffset = 0
                }
                return .span(item)
            }
            guard nextGroup < file.rowGroupCount else {
                current = nil
                return nil
            }
            let strings: ParquetStrings
            do throws(ParquetError) {
                strings = try prefetcher.take(nextGroup)
            } catch {
                throw .parquet(error)
            }
            counters.bytesRead += file.chunkBytes(column, rowGroup: nextGroup)
            counters.nullRows += strings.nullCount
            current = strings
            currentFirstRow = nextFirstRow
            nextFirstRow += strings.rowCount
            valueIndex = 0
            valueOffset = 0
            nextGroup += 1
        }
    }
}

/// Decodes row groups `0..<count` ahead of a reader that takes them in order: up to `threads` at a
/// time on other threads while their estimated decoded size fits `budget` (always at least the next
/// one). With one thread, `take` decodes on the caller's thread.
final class RowGroupPrefetcher: @unchecked Sendable {
    typealias Load = @Sendable (Int) throws(ParquetError) -> ParquetStrings

    private let count: Int
    private let window: Int
    private let budget: Int
    private let cost: @Sendable (Int) -> Int
    private let load: Load
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var results: [Int: Result<ParquetStrings, ParquetError>] = [:]
    private var scheduled = 0
    private var taken = 0
    private var inFlightCost = 0

    init(count: Int, threads: Int, budget: Int, cost: @escaping @Sendable (Int) -> Int, load: @escaping Load) {
        self.count = count
        window = max(1, threads)
        self.budget = budget
        self.cost = cost
        self.load = load
    }

    /// Row group `index` (the next one in order), waiting for its decoding if needed.
    func take(_ index: Int) throws(ParquetError) -> ParquetStrings {
        if window == 1 {
            taken += 1
            return try load(index)
        }
        condition.lock()
        defer { condition.unlock() }
        precondition(index == taken, "row groups are taken in order: expected \(taken), got \(index)")
        schedule()
        while results[index] == nil { condition.wait() }
        let result = results.removeValue(forKey: index)!
        taken += 1
        inFlightCost -= cost(index)
        schedule()
        return try result.get()
    }

    /// Starts decoding more row groups while the window and budget allow. Called with the lock held.
    private func schedule() {
        while scheduled < count, scheduled - taken < window,
              scheduled == taken || inFlightCost + cost(scheduled) <= budget {
            let i = scheduled
            scheduled += 1
            inFlightCost += cost(i)
            DispatchQueue.global(qos: .userInitiated).async { [self] in
                let r = Result { () throws(ParquetError) -> ParquetStrings in try load(i) }
                condition.lock()
                results[i] = r
                condition.broadcast()
                condition.unlock()
            }
        }
    }
}
