// Errors reading Parquet files. Every message is one line naming the file (and the column, row
// group or row where it applies) and says what to do.
import Foundation

/// Errors of `ParquetFile`; `gpt prepare` reports them through `DocumentError.parquet`.
public enum ParquetError: LocalizedError, Equatable {
    /// The file cannot be opened or read.
    case cannotRead(path: String, reason: String)
    /// A pipe, FIFO or other non-seekable input (Parquet is read from the end).
    case notSeekable(path: String)
    /// No `PAR1` magic at the start and end of the file.
    case notParquet(path: String, reason: String)
    /// An encrypted file (`PARE` magic).
    case encrypted(path: String)
    /// A structure that does not decode or an offset, size or count that does not fit.
    case corrupt(path: String, detail: String)
    /// No top-level column of that name.
    case columnNotFound(path: String, column: String, available: [String])
    /// The column exists but is not a flat string column.
    case unsupportedColumn(path: String, column: String, reason: String)
    /// A compression codec the reader does not decode.
    case unsupportedCodec(path: String, column: String, codec: String)
    /// A page encoding the reader does not decode.
    case unsupportedEncoding(path: String, column: String, encoding: String)
    /// A codec's system library is missing.
    case libraryMissing(path: String, codec: String, library: String, package: String)
    /// A page failed to decompress.
    case decompressionFailed(path: String, column: String, rowGroup: Int, codec: String, detail: String)
    /// A string value that is not UTF-8 (row numbers count from 0 over the whole file).
    case invalidUTF8(path: String, column: String, row: Int)

    public var errorDescription: String? {
        switch self {
        case let .cannotRead(path, reason):
            return "cannot read Parquet file '\(path)': \(reason)"
        case let .notSeekable(path):
            return "'\(path)' is a pipe or another stream, but Parquet needs random access (its metadata is at the end); save it to a file first"
        case let .notParquet(path, reason):
            return "'\(path)' is not a Parquet file: \(reason)"
        case let .encrypted(path):
            return "'\(path)' is an encrypted Parquet file, which is not supported; decrypt it (e.g. with pyarrow) first"
        case let .corrupt(path, detail):
            return "corrupt Parquet file '\(path)': \(detail); re-download or re-write it"
        case let .columnNotFound(path, column, available):
            let list = available.prefix(20).map { "'\($0)'" }.joined(separator: ", ") + (available.count > 20 ? ", ..." : "")
            return "Parquet file '\(path)' has no column '\(column)' (columns: \(list)); choose one with --column"
        case let .unsupportedColumn(path, column, reason):
            return "column '\(column)' of '\(path)' cannot be read as text: \(reason)"
        case let .unsupportedCodec(path, column, codec):
            return "column '\(column)' of '\(path)' is compressed with \(codec), which is not supported "
                + "(supported: UNCOMPRESSED, SNAPPY, GZIP, ZSTD); re-write the file, e.g. pyarrow.parquet.write_table(t, f, compression='zstd')"
        case let .unsupportedEncoding(path, column, encoding):
            return "column '\(column)' of '\(path)' uses the \(encoding) encoding, which is not supported "
                + "(supported: PLAIN and dictionary); re-write the file with pyarrow's defaults"
        case let .libraryMissing(path, codec, library, package):
            return "cannot decompress '\(path)' (\(codec)): \(library) is not installed; install it (Debian/Ubuntu: apt-get install \(package))"
        case let .decompressionFailed(path, column, rowGroup, codec, detail):
            return "corrupt Parquet file '\(path)': a \(codec) page of column '\(column)' in row group \(rowGroup) does not decompress (\(detail)); re-download or re-write it"
        case let .invalidUTF8(path, column, row):
            return "invalid UTF-8 in column '\(column)' of '\(path)' at row \(row); the text column must hold UTF-8 strings"
        }
    }
}
