// A Parquet file opened for reading one string column, row group by row group: the footer
// (`PAR1` + Thrift FileMetaData + 4-byte length + `PAR1`) is read once; each row group's column
// chunk is then read with pread and decoded on its own, so memory follows the row group, not the
// file, and row groups can be decoded on several threads at once.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A leaf column of a Parquet file's schema.
public struct ParquetColumn: Sendable, Equatable {
    /// Dotted path (`text` for a top-level column).
    public let name: String
    /// Position among the leaf columns (the index of its chunk in each row group).
    let leafIndex: Int
    let physicalType: Int32?
    let maxDefinitionLevel: Int
    let maxRepetitionLevel: Int
}

/// A Parquet file opened for reading string columns.
public final class ParquetFile: @unchecked Sendable {
    /// The path as given (used in error messages).
    public let path: String
    /// File size in bytes.
    public let size: Int
    /// Leaf columns in schema order.
    public let columns: [ParquetColumn]
    /// Rows in the file (FileMetaData.num_rows).
    public let rowCount: Int
    /// Bytes of the footer read when opening.
    public let footerBytes: Int

    private let file: InputFile
    private let rowGroups: [RowGroupMetadata]
    /// Offset of the first byte after the column data (where the footer starts).
    private let dataEnd: Int

    /// Opens `path` and reads its footer. Pipes and other streams are refused (`notSeekable`).
    public init(path: String) throws(ParquetError) {
        self.path = path
        var st = stat()
        guard stat(path, &st) == 0 else { throw .cannotRead(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw .cannotRead(path: path, reason: "it is a directory") }
            throw .notSeekable(path: path)
        }
        do {
            file = try InputFile(path: path)
            size = try file.size()
        } catch {
            throw .cannotRead(path: path, reason: error.reason)
        }
        // "PAR1" + column data + footer + footer length (4) + "PAR1"
        guard size >= 12 else { throw .notParquet(path: path, reason: "\(size) bytes is too short (no PAR1 header and footer)") }
        let head = try ParquetFile.read(file, path: path, at: 0, count: 4)
        let tail = try ParquetFile.read(file, path: path, at: size - 8, count: 8)
        let magic: [UInt8] = Array("PAR1".utf8)
        if Array(head) == Array("PARE".utf8) || Array(tail[4...]) == Array("PARE".utf8) { throw .encrypted(path: path) }
        guard Array(head) == magic else { throw .notParquet(path: path, reason: "no PAR1 magic at the start") }
        guard Array(tail[4...]) == magic else {
            throw .notParquet(path: path, reason: "no PAR1 magic at the end (truncated, or still being written?)")
        }
        let footerLength = Int(UInt32(tail[0]) | UInt32(tail[1]) << 8 | UInt32(tail[2]) << 16 | UInt32(tail[3]) << 24)
        guard footerLength <= size - 12 else {
            throw .corrupt(path: path, detail: "footer length \(footerLength) exceeds the file size \(size)")
        }
        dataEnd = size - 8 - footerLength
        footerBytes = footerLength + 8
        let footer = try ParquetFile.read(file, path: path, at: dataEnd, count: footerLength)
        let metadata: FileMetadata
        do throws(ThriftError) {
            metadata = try footer.withBytes { (raw) throws(ThriftError) -> FileMetadata in
                var r = ThriftCompactReader(raw)
                return try FileMetadata.decode(&r)
            }
        } catch {
            throw .corrupt(path: path, detail: "bad footer (FileMetaData): \(error.message)")
        }
        columns = try ParquetFile.leaves(metadata.schema, path: path)
        rowGroups = metadata.rowGroups
        guard metadata.numRows <= Int64(Int.max / 2) else { throw .corrupt(path: path, detail: "num_rows \(metadata.numRows)") }
        rowCount = Int(metadata.numRows)
        var rows: Int64 = 0
        for (i, g) in rowGroups.enumerated() {
            guard g.columns.count == columns.count else {
                throw .corrupt(path: path, detail: "row group \(i) has \(g.columns.count) column chunks for \(columns.count) columns")
            }
            rows += g.numRows
            guard rows <= metadata.numRows else { throw .corrupt(path: path, detail: "row groups hold more rows than the file's \(metadata.numRows)") }
        }
        guard rows == metadata.numRows else {
            throw .corrupt(path: path, detail: "row groups hold \(rows) rows, the footer says \(metadata.numRows)")
        }
    }

    /// Row groups in the file.
    public var rowGroupCount: Int { rowGroups.count }

    /// Rows in row group `index`.
    public func rowCount(rowGroup index: Int) -> Int { Int(rowGroups[index].numRows) }

    /// Bytes of row group `index`'s chunk of `column` (compressed, as stored).
    public func chunkBytes(_ column: ParquetColumn, rowGroup index: Int) -> Int {
        max(0, Int(rowGroups[index].columns[column.leafIndex]?.totalCompressedSize ?? 0))
    }

    /// Decoded size of row group `index`'s chunk of `column` as the footer states it (an estimate for memory budgets).
    func chunkUncompressedBytes(_ column: ParquetColumn, rowGroup index: Int) -> Int {
        Int(min(max(0, rowGroups[index].columns[column.leafIndex]?.totalUncompressedSize ?? 0), 1 << 40))
    }

    /// The top-level (or dotted-path) string column `name`.
    /// - Throws: `columnNotFound` with the available names, or `unsupportedColumn` when it is not a
    ///   flat BYTE_ARRAY column.
    public func stringColumn(named name: String) throws(ParquetError) -> ParquetColumn {
        guard let c = columns.first(where: { $0.name == name }) else {
            throw .columnNotFound(path: path, column: name, available: columns.map(\.name))
        }
        guard c.maxRepetitionLevel == 0 else {
            throw .unsupportedColumn(path: path, column: name, reason: "it is a repeated (list) column, not one string per row")
        }
        guard c.physicalType == ParquetEnums.byteArray else {
            let type = c.physicalType.map(ParquetEnums.typeName) ?? "no type"
            throw .unsupportedColumn(path: path, column: name, reason: "it holds \(type) values, not strings")
        }
        return c
    }

    /// Reads and decodes row group `index` of `column`. Thread-safe: row groups may be read concurrently.
    /// - Returns: the non-null values in row order (raw bytes: a string column's UTF-8, not validated here).
    public func readStrings(_ column: ParquetColumn, rowGroup index: Int) throws(ParquetError) -> ParquetStrings {
        let group = rowGroups[index]
        guard let meta = group.columns[column.leafIndex] else {
            throw .corrupt(path: path, detail: "row group \(index) has no metadata for column '\(column.name)'")
        }
        guard meta.externalFile == nil else {
            throw .unsupportedColumn(path: path, column: column.name, reason: "its data is in another file ('\(meta.externalFile!)')")
        }
        let codec = PageCodec(raw: meta.codec)
        guard codec.isSupported else { throw .unsupportedCodec(path: path, column: column.name, codec: codec.name) }
        guard meta.type == ParquetEnums.byteArray else {
            throw .corrupt(path: path, detail: "row group \(index): column '\(column.name)' chunk has type \(ParquetEnums.typeName(meta.type))")
        }
        guard meta.numValues == group.numRows, group.numRows <= Int64(Int32.max) else {
            throw .corrupt(path: path, detail: "row group \(index): column '\(column.name)' has \(meta.numValues) values for \(group.numRows) rows")
        }
        // The chunk starts at its dictionary page when it has one (some writers store 0 for "none").
        var start = meta.dataPageOffset
        if let d = meta.dictionaryPageOffset, d > 0, d < start { start = d }
        let length = meta.totalCompressedSize
        guard start >= 4, length >= 0, start <= Int64(dataEnd), length <= Int64(dataEnd) - start else {
            throw .corrupt(path: path, detail: "row group \(index): column '\(column.name)' chunk at \(start) (\(length) bytes) "
                + "lies outside the data (bytes 4..<\(dataEnd))")
        }
        let chunk = try ParquetFile.read(file, path: path, at: Int(start), count: Int(length))
        let decoder = ColumnChunkDecoder(path: path, column: column.name, rowGroup: index, codec: codec,
                                         maxDefinitionLevel: column.maxDefinitionLevel, expectedValues: Int(meta.numValues))
        return try decoder.decode(ByteStorage(chunk))
    }

    // MARK: - Helpers

    private static func read(_ file: InputFile, path: String, at offset: Int, count: Int) throws(ParquetError) -> [UInt8] {
        var failure: POSIXFailure?
        let bytes = [UInt8](unsafeUninitializedCapacity: max(count, 1)) { buffer, initialized in
            do throws(POSIXFailure) {
                initialized = try file.read(into: buffer.baseAddress!, count: count, at: offset)
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw .cannotRead(path: path, reason: failure.reason) }
        guard bytes.count == count else { throw .corrupt(path: path, detail: "file shorter than expected (changed while reading?)") }
        return bytes
    }

    /// The leaf columns of a flattened schema, with their dotted paths and max levels.
    private static func leaves(_ schema: [SchemaElement], path: String) throws(ParquetError) -> [ParquetColumn] {
        var result: [ParquetColumn] = []
        var index = 1
        // Walks the children of one group; `prefix`, `def`, `rep`: the parent's path and levels.
        func walk(children: Int, prefix: String, def: Int, rep: Int, depth: Int) throws(ParquetError) {
            guard depth < 64 else { throw .corrupt(path: path, detail: "schema nested deeper than 64") }
            for _ in 0..<children {
                guard index < schema.count else { throw .corrupt(path: path, detail: "schema ends inside a group") }
                let e = schema[index]
                index += 1
                let name = prefix.isEmpty ? e.name : prefix + "." + e.name
                let d = def + (e.repetition == ParquetEnums.optional || e.repetition == ParquetEnums.repeated ? 1 : 0)
                let r = rep + (e.repetition == ParquetEnums.repeated ? 1 : 0)
                if let n = e.numChildren, n > 0 || e.type == nil {
                    guard n >= 0, n <= schema.count else { throw .corrupt(path: path, detail: "schema group '\(name)' has \(n) children") }
                    try walk(children: Int(n), prefix: name, def: d, rep: r, depth: depth + 1)
                } else {
                    result.append(ParquetColumn(name: name, leafIndex: result.count, physicalType: e.type,
                                                maxDefinitionLevel: d, maxRepetitionLevel: r))
                }
            }
        }
        guard let root = schema.first, let n = root.numChildren, n >= 0 else {
            throw .corrupt(path: path, detail: "the schema has no root group")
        }
        try walk(children: Int(n), prefix: "", def: 0, rep: 0, depth: 0)
        return result
    }
}
