// The parts of Parquet's Thrift metadata a column reader needs: FileMetaData (schema, row groups),
// RowGroup, ColumnChunk/ColumnMetaData and PageHeader (with the data page v1/v2 and dictionary page
// headers). Fields are decoded by id; everything else (statistics, page indexes, key/value metadata,
// bloom filters) is skipped. Field ids follow apache/parquet-format src/main/thrift/parquet.thrift.

/// Parquet enum values used by the reader (parquet.thrift `Type`, `Encoding`, `CompressionCodec`, `PageType`).
enum ParquetEnums {
    // Type
    static let byteArray: Int32 = 6
    static let typeNames = ["BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"]
    // FieldRepetitionType
    static let required: Int32 = 0
    static let optional: Int32 = 1
    static let repeated: Int32 = 2
    // Encoding
    static let plain: Int32 = 0
    static let plainDictionary: Int32 = 2
    static let rle: Int32 = 3
    static let bitPacked: Int32 = 4
    static let deltaLengthByteArray: Int32 = 6
    static let deltaByteArray: Int32 = 7
    static let rleDictionary: Int32 = 8
    static let encodingNames = [0: "PLAIN", 2: "PLAIN_DICTIONARY", 3: "RLE", 4: "BIT_PACKED", 5: "DELTA_BINARY_PACKED",
                                6: "DELTA_LENGTH_BYTE_ARRAY", 7: "DELTA_BYTE_ARRAY", 8: "RLE_DICTIONARY", 9: "BYTE_STREAM_SPLIT"]
    // PageType
    static let dataPage: Int32 = 0
    static let indexPage: Int32 = 1
    static let dictionaryPage: Int32 = 2
    static let dataPageV2: Int32 = 3

    static func typeName(_ t: Int32) -> String { t >= 0 && Int(t) < typeNames.count ? typeNames[Int(t)] : "type \(t)" }
    static func encodingName(_ e: Int32) -> String { encodingNames[Int(e)] ?? "encoding \(e)" }
}

/// One node of the flattened schema tree (depth-first; the first element is the root).
struct SchemaElement {
    var type: Int32?
    var repetition: Int32?
    var name = ""
    var numChildren: Int32?
}

/// ColumnMetaData of one column chunk.
struct ColumnChunkMetadata {
    var type: Int32 = -1
    var codec: Int32 = -1
    var path: [String] = []
    var numValues: Int64 = -1
    var totalUncompressedSize: Int64 = -1
    var totalCompressedSize: Int64 = -1
    var dataPageOffset: Int64 = -1
    var dictionaryPageOffset: Int64?
    /// Set when the chunk lives in another file (ColumnChunk.file_path), which this reader does not follow.
    var externalFile: String?
}

/// A row group: its row count and one entry per leaf column (nil when the chunk has no metadata).
struct RowGroupMetadata {
    var numRows: Int64 = -1
    var columns: [ColumnChunkMetadata?] = []
}

/// The file footer.
struct FileMetadata {
    var schema: [SchemaElement] = []
    var numRows: Int64 = -1
    var rowGroups: [RowGroupMetadata] = []
}

/// A page header: the page type, its sizes and the header of its kind.
struct PageHeader {
    struct DataV1 { var numValues: Int32 = -1; var encoding: Int32 = -1; var definitionEncoding: Int32 = -1; var repetitionEncoding: Int32 = -1 }
    struct DataV2 {
        var numValues: Int32 = -1, numNulls: Int32 = -1, numRows: Int32 = -1, encoding: Int32 = -1
        var definitionLength: Int32 = -1, repetitionLength: Int32 = -1
        var isCompressed = true
    }
    struct Dictionary { var numValues: Int32 = -1; var encoding: Int32 = -1 }

    var type: Int32 = -1
    var uncompressedSize: Int32 = -1
    var compressedSize: Int32 = -1
    var dataV1: DataV1?
    var dataV2: DataV2?
    var dictionary: Dictionary?
}

// MARK: - Decoding

extension FileMetadata {
    /// Decodes FileMetaData; checks the required fields this reader uses.
    static func decode(_ r: inout ThriftCompactReader) throws(ThriftError) -> FileMetadata {
        var m = FileMetadata()
        var last: Int16 = 0
        while let f = try r.readFieldHeader(lastID: &last) {
            switch (f.id, f.type) {
            case (2, ThriftType.list):
                let (t, n) = try r.readListHeader()
                guard t == ThriftType.structure else { throw ThriftError("FileMetaData.schema is not a list of structs") }
                m.schema.reserveCapacity(n)
                for _ in 0..<n { m.schema.append(try SchemaElement.decode(&r)) }
            case (3, ThriftType.i64):
                m.numRows = try r.readI64()
            case (4, ThriftType.list):
                let (t, n) = try r.readListHeader()
                guard t == ThriftType.structure else { throw ThriftError("FileMetaData.row_groups is not a list of structs") }
                m.rowGroups.reserveCapacity(n)
                for _ in 0..<n { m.rowGroups.append(try RowGroupMetadata.decode(&r)) }
            default:
                try r.skip(f.type)
            }
        }
        guard !m.schema.isEmpty else { throw ThriftError("FileMetaData has no schema") }
        guard m.numRows >= 0 else { throw ThriftError("FileMetaData.num_rows is missing or negative") }
        return m
    }
}

extension SchemaElement {
    static func decode(_ r: inout ThriftCompactReader) throws(ThriftError) -> SchemaElement {
        var e = SchemaElement()
        var last: Int16 = 0
        while let f = try r.readFieldHeader(lastID: &last) {
            switch (f.id, f.type) {
            case (1, ThriftType.i32): e.type = try r.readI32()
            case (3, ThriftType.i32): e.repetition = try r.readI32()
            case (4, ThriftType.binary): e.name = try r.readString()
            case (5, ThriftType.i32): e.numChildren = try r.readI32()
            default: try r.skip(f.type)
            }
        }
        return e
    }
}

extension RowGroupMetadata {
    static func decode(_ r: inout ThriftCompactReader) throws(ThriftError) -> RowGroupMetadata {
        var g = RowGroupMetadata()
        var last: Int16 = 0
        while let f = try r.readFieldHeader(lastID: &last) {
            switch (f.id, f.type) {
            case (1, ThriftType.list):
                let (t, n) = try r.readListHeader()
                guard t == ThriftType.structure else { throw ThriftError("RowGroup.columns is not a list of structs") }
                g.columns.reserveCapacity(n)
                for _ in 0..<n { g.columns.append(try decodeColumnChunk(&r)) }
            case (3, ThriftType.i64):
                g.numRows = try r.readI64()
            default:
                try r.skip(f.type)
            }
        }
        guard g.numRows >= 0 else { throw ThriftError("RowGroup.num_rows is missing or negative") }
        return g
    }

    /// ColumnChunk: its meta_data (field 3) and file_path (field 1).
    private static func decodeColumnChunk(_ r: inout ThriftCompactReader) throws(ThriftError) -> ColumnChunkMetadata? {
        var meta: ColumnChunkMetadata?
        var filePath: String?
        var last: Int16 = 0
        while let f = try r.readFieldHeader(lastID: &last) {
            switch (f.id, f.type) {
            case (1, ThriftType.binary): filePath = try r.readString()
            case (3, ThriftType.structure): meta = try ColumnChunkMetadata.decode(&r)
            default: try r.skip(f.type)
            }
        }
        meta?.externalFile = filePath.flatMap { $0.isEmpty ? nil : $0 }
        return meta
    }
}

extension ColumnChunkMetadata {
    static func decode(_ r: inout ThriftCompactReader) throws(ThriftError) -> ColumnChunkMetadata {
        var c = ColumnChunkMetadata()
        var last: Int16 = 0
        while let f = try r.readFieldHeader(lastID: &last) {
            switch (f.id, f.type) {
            case (1, ThriftType.i32): c.type = try r.readI32()
            case (3, ThriftType.list):
                let (t, n) = try r.readListHeader()
                guard t == ThriftType.binary else { throw ThriftError("ColumnMetaData.path_in_schema is not a list of strings") }
                for _ in 0..<n { c.path.append(try r.readString()) }
            case (4, ThriftType.i32): c.codec = try r.readI32()
            case (5, ThriftType.i64): c.numValues = try r.readI64()
            case (6, ThriftType.i64): c.totalUncompressedSize = try r.readI64()
            case (7, ThriftType.i64): c.totalCompressedSize = try r.readI64()
            case (9, ThriftType.i64): c.dataPageOffset = try r.readI64()
            case (11, ThriftType.i64): c.dictionaryPageOffset = try r.readI64()
            default: try r.skip(f.type)
            }
        }
        return c
    }
}

extension PageHeader {
    static func decode(_ r: inout ThriftCompactReader) throws(ThriftError) -> PageHeader {
        var h = PageHeader()
        var last: Int16 = 0
        while let f = try r.readFieldHeader(lastID: &last) {
            switch (f.id, f.type) {
            case (1, ThriftType.i32): h.type = try r.readI32()
            case (2, ThriftType.i32): h.uncompressedSize = try r.readI32()
            case (3, ThriftType.i32): h.compressedSize = try r.readI32()
            case (5, ThriftType.structure): h.dataV1 = try decodeV1(&r)
            case (7, ThriftType.structure): h.dictionary = try decodeDictionary(&r)
            case (8, ThriftType.structure): h.dataV2 = try decodeV2(&r)
            default: try r.skip(f.type)
            }
        }
        guard h.type >= 0 else { throw ThriftError("PageHeader.type is missing") }
        guard h.uncompressedSize >= 0, h.compressedSize >= 0 else {
            throw ThriftError("PageHeader sizes missing or negative (compressed \(h.compressedSize), uncompressed \(h.uncompressedSize))")
        }
        return h
    }

    private static func decodeV1(_ r: inout ThriftCompactReader) throws(ThriftError) -> DataV1 {
        var d = DataV1()
        var last: Int16 = 0
        while let f = try r.readFieldHeader(lastID: &last) {
            switch (f.id, f.type) {
            case (1, ThriftType.i32): d.numValues = try r.readI32()
            case (2, ThriftType.i32): d.encoding = try r.readI32()
            case (3, ThriftType.i32): d.definitionEncoding = try r.readI32()
            case (4, ThriftType.i32): d.repetitionEncoding = try r.readI32()
            default: try r.skip(f.type)
            }
        }
        guard d.numValues >= 0, d.encoding >= 0 else { throw ThriftError("DataPageHeader lacks num_values or encoding") }
        return d
    }

    private static func decodeV2(_ r: inout ThriftCompactReader) throws(ThriftError) -> DataV2 {
        var d = DataV2()
        var last: Int16 = 0
        while let f = try r.readFieldHeader(lastID: &last) {
            switch (f.id, f.type) {
            case (1, ThriftType.i32): d.numValues = try r.readI32()
            case (2, ThriftType.i32): d.numNulls = try r.readI32()
            case (3, ThriftType.i32): d.numRows = try r.readI32()
            case (4, ThriftType.i32): d.encoding = try r.readI32()
            case (5, ThriftType.i32): d.definitionLength = try r.readI32()
            case (6, ThriftType.i32): d.repetitionLength = try r.readI32()
            case (7, ThriftType.boolTrue), (7, ThriftType.boolFalse): d.isCompressed = ThriftCompactReader.fieldBool(f.type)
            default: try r.skip(f.type)
            }
        }
        guard d.numValues >= 0, d.numNulls >= 0, d.numNulls <= d.numValues, d.encoding >= 0,
              d.definitionLength >= 0, d.repetitionLength >= 0 else {
            throw ThriftError("DataPageHeaderV2 fields missing or out of range (values \(d.numValues), nulls \(d.numNulls), "
                + "level lengths \(d.definitionLength)/\(d.repetitionLength))")
        }
        return d
    }

    private static func decodeDictionary(_ r: inout ThriftCompactReader) throws(ThriftError) -> Dictionary {
        var d = Dictionary()
        var last: Int16 = 0
        while let f = try r.readFieldHeader(lastID: &last) {
            switch (f.id, f.type) {
            case (1, ThriftType.i32): d.numValues = try r.readI32()
            case (2, ThriftType.i32): d.encoding = try r.readI32()
            default: try r.skip(f.type)
            }
        }
        guard d.numValues >= 0 else { throw ThriftError("DictionaryPageHeader.num_values is missing or negative") }
        return d
    }
}
