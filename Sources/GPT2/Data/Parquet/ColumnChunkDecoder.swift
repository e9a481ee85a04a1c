// Decodes the pages of one BYTE_ARRAY column chunk into its string values: an optional dictionary
// page (PLAIN values), then data pages v1 (levels and values compressed together; levels carry a
// 4-byte length) or v2 (levels first and never compressed, lengths in the header), whose values are
// PLAIN, dictionary indices (RLE/bit-packed hybrid), DELTA_LENGTH_BYTE_ARRAY or DELTA_BYTE_ARRAY
// (DeltaDecoder.swift). A writer may fall back from dictionary to PLAIN (or DELTA) pages partway
// through a chunk. Values are not copied: each is a span of a decompressed page (or of the raw
// chunk for uncompressed pages) or of the dictionary; only DELTA_BYTE_ARRAY pages, whose values
// share prefixes, are rebuilt into a storage of their own.

/// Immutable bytes shared by decoded values and the threads that tokenize them.
final class ByteStorage: Sendable {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
}

/// Where one value lies: `count` bytes at `start` of storage `storage`; `row` is its row in the row group.
struct ValueSpan: Sendable {
    var storage: Int32
    var row: Int32
    var start: Int
    var count: Int
}

/// The non-null strings of one column in one row group, in row order.
public struct ParquetStrings: Sendable {
    /// Rows in the row group (values plus nulls).
    public let rowCount: Int
    /// Null rows (skipped).
    public let nullCount: Int
    let storages: [ByteStorage]
    let spans: [ValueSpan]

    /// Non-null values.
    public var count: Int { spans.count }

    /// The bytes of value `i` (as stored: UTF-8 for a string column, unchecked).
    public func value(_ i: Int) -> [UInt8] {
        let s = spans[i]
        return Array(storages[Int(s.storage)].bytes[s.start..<(s.start + s.count)])
    }

    /// The row (within the row group) of value `i`.
    public func row(_ i: Int) -> Int { Int(spans[i].row) }
}

/// Decodes one column chunk; errors carry the file, column and row group.
struct ColumnChunkDecoder {
    let path: String
    let column: String
    let rowGroup: Int
    let codec: PageCodec
    let maxDefinitionLevel: Int
    /// ColumnMetaData.num_values, checked against the row group's row count by the caller.
    let expectedValues: Int

    private func corrupt(_ detail: String) -> ParquetError {
        .corrupt(path: path, detail: "column '\(column)', row group \(rowGroup): \(detail)")
    }

    /// Decodes every page of `chunk` (the bytes of the column chunk, from its first page to its end).
    func decode(_ chunk: ByteStorage) throws(ParquetError) -> ParquetStrings {
        var storages = [chunk]
        var spans: [ValueSpan] = []
        var dictionary: [ValueSpan] = []
        var hasDictionary = false
        var values = 0  // values seen so far, nulls included (the row within the row group)
        var nulls = 0
        var pos = 0
        let total = chunk.bytes.count
        while values < expectedValues {
            guard pos < total else { throw corrupt("the pages end after \(values) of \(expectedValues) values") }
            let header: PageHeader
            do throws(ThriftError) {
                (header, pos) = try chunk.bytes.withBytes { (raw) throws(ThriftError) -> (PageHeader, Int) in
                    var r = ThriftCompactReader(raw, position: pos)
                    return (try PageHeader.decode(&r), r.position)
                }
            } catch {
                throw corrupt("bad page header at chunk byte \(pos): \(error.message)")
            }
            let bodySize = Int(header.compressedSize)
            guard bodySize <= total - pos else {
                throw corrupt("a page of \(bodySize) bytes runs past the end of the column chunk")
            }
            let body = pos..<(pos + bodySize)
            pos += bodySize

            switch header.type {
            case ParquetEnums.dictionaryPage:
                guard let d = header.dictionary else { throw corrupt("dictionary page without its header") }
                guard !hasDictionary, values == 0 else { throw corrupt("a dictionary page after the first page") }
                guard d.encoding == ParquetEnums.plain || d.encoding == ParquetEnums.plainDictionary else {
                    throw ParquetError.unsupportedEncoding(path: path, column: column, encoding: ParquetEnums.encodingName(d.encoding) + " dictionary")
                }
                let page = try pageData(chunk, body, uncompressedSize: Int(header.uncompressedSize), storages: &storages)
                dictionary.reserveCapacity(min(Int(d.numValues), page.range.count / 4))
                try plainValues(storages[Int(page.storage)].bytes, page.range, count: Int(d.numValues)) {
                    dictionary.append(ValueSpan(storage: page.storage, row: 0, start: $0, count: $1))
                }
                hasDictionary = true

            case ParquetEnums.dataPage:
                guard let v1 = header.dataV1 else { throw corrupt("data page without its header") }
                let n = Int(v1.numValues)
                guard n <= expectedValues - values else { throw corrupt("pages hold more than the chunk's \(expectedValues) values") }
                let page = try pageData(chunk, body, uncompressedSize: Int(header.uncompressedSize), storages: &storages)
                let bytes = storages[Int(page.storage)].bytes
                var valuesStart = page.range.lowerBound
                var levels: [UInt32] = []
                if maxDefinitionLevel > 0 {
                    guard v1.definitionEncoding == ParquetEnums.rle else {
                        throw ParquetError.unsupportedEncoding(path: path, column: column,
                                                               encoding: ParquetEnums.encodingName(v1.definitionEncoding) + " definition levels")
                    }
                    guard page.range.count >= 4 else { throw corrupt("data page too short for its definition levels") }
                    let length = bytes.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: valuesStart, as: UInt32.self).littleEndian) }
                    guard length <= page.range.count - 4 else { throw corrupt("definition levels of \(length) bytes run past the page") }
                    levels = try definitionLevels(bytes, (valuesStart + 4)..<(valuesStart + 4 + length), count: n)
                    valuesStart += 4 + length
                }
                try dataValues(encoding: v1.encoding, bytes: bytes, range: valuesStart..<page.range.upperBound, storage: page.storage,
                               count: n, levels: levels, firstRow: values, dictionary: dictionary, hasDictionary: hasDictionary,
                               spans: &spans, nulls: &nulls, storages: &storages)
                values += n

            case ParquetEnums.dataPageV2:
                guard let v2 = header.dataV2 else { throw corrupt("data page v2 without its header") }
                let n = Int(v2.numValues)
                guard n <= expectedValues - values else { throw corrupt("pages hold more than the chunk's \(expectedValues) values") }
                let repLength = Int(v2.repetitionLength), defLength = Int(v2.definitionLength)
                guard repLength <= body.count, defLength <= body.count - repLength else {
                    throw corrupt("level lengths \(repLength) + \(defLength) exceed the page's \(body.count) bytes")
                }
                var levels: [UInt32] = []
                if maxDefinitionLevel > 0 {
                    let start = body.lowerBound + repLength
                    levels = try definitionLevels(chunk.bytes, start..<(start + defLength), count: n)
                }
                let dataRange = (body.lowerBound + repLength + defLength)..<body.upperBound
                let dataSize = Int(header.uncompressedSize) - repLength - defLength
                guard dataSize >= 0 else { throw corrupt("page v2 uncompressed size smaller than its levels") }
                let page: (storage: Int32, range: Range<Int>)
                if v2.isCompressed {
                    page = try pageData(chunk, dataRange, uncompressedSize: dataSize, storages: &storages)
                } else {
                    guard dataRange.count == dataSize else { throw corrupt("uncompressed page v2 of \(dataRange.count) bytes, the header says \(dataSize)") }
                    page = (0, dataRange)
                }
                let nullsBefore = nulls
                try dataValues(encoding: v2.encoding, bytes: storages[Int(page.storage)].bytes, range: page.range, storage: page.storage,
                               count: n, levels: levels, firstRow: values, dictionary: dictionary, hasDictionary: hasDictionary,
                               spans: &spans, nulls: &nulls, storages: &storages)
                guard nulls - nullsBefore == Int(v2.numNulls) else {
                    throw corrupt("page v2 says \(v2.numNulls) nulls, its definition levels \(nulls - nullsBefore)")
                }
                values += n

            case ParquetEnums.indexPage:
                continue
            default:
                throw corrupt("unknown page type \(header.type)")
            }
        }
        return ParquetStrings(rowCount: values, nullCount: nulls, storages: storages, spans: spans)
    }

    // MARK: - Pages

    /// The decompressed bytes of a page body: a new storage, or the chunk itself when uncompressed.
    private func pageData(_ chunk: ByteStorage, _ body: Range<Int>, uncompressedSize: Int,
                          storages: inout [ByteStorage]) throws(ParquetError) -> (storage: Int32, range: Range<Int>) {
        if codec == .uncompressed || (body.isEmpty && uncompressedSize == 0) {  // (some writers store empty sections raw)
            guard body.count == uncompressedSize else { throw corrupt("uncompressed page of \(body.count) bytes, the header says \(uncompressedSize)") }
            return (0, body)
        }
        let data: [UInt8]
        do throws(CodecError) {
            data = try chunk.bytes.withBytes { (raw) throws(CodecError) -> [UInt8] in
                try codec.decompress(UnsafeRawBufferPointer(rebasing: raw[body]), size: uncompressedSize)
            }
        } catch {
            switch error {
            case let .libraryMissing(library, package):
                throw ParquetError.libraryMissing(path: path, codec: codec.name, library: library, package: package)
            case let .corrupt(detail):
                throw ParquetError.decompressionFailed(path: path, column: column, rowGroup: rowGroup, codec: codec.name, detail: detail)
            }
        }
        guard storages.count < Int(Int32.max) else { throw corrupt("too many pages") }
        storages.append(ByteStorage(data))
        return (Int32(storages.count - 1), 0..<data.count)
    }

    /// `count` definition levels (RLE/bit-packed hybrid, no length prefix) from `range` of `bytes`.
    private func definitionLevels(_ bytes: [UInt8], _ range: Range<Int>, count: Int) throws(ParquetError) -> [UInt32] {
        var levels = [UInt32](repeating: 0, count: count)
        do throws(ThriftError) {
            try bytes.withBytes { (raw) throws(ThriftError) in
                var d = RLEHybridDecoder(UnsafeRawBufferPointer(rebasing: raw[range]),
                                         bitWidth: RLEHybridDecoder.bitWidth(forMaxValue: maxDefinitionLevel))
                try levels.withMutableBuffer { (out) throws(ThriftError) in try d.decode(into: out) }
            }
        } catch {
            throw corrupt("definition levels: \(error.message)")
        }
        return levels
    }

    /// Appends the spans of a data page's values; rows whose level is below the maximum are nulls.
    private func dataValues(encoding: Int32, bytes: [UInt8], range: Range<Int>, storage: Int32, count: Int, levels: [UInt32],
                            firstRow: Int, dictionary: [ValueSpan], hasDictionary: Bool,
                            spans: inout [ValueSpan], nulls: inout Int, storages: inout [ByteStorage]) throws(ParquetError) {
        // Rows (in the row group) of the non-null values.
        var rows: [Int32] = []
        if levels.isEmpty {
            rows = (0..<count).map { Int32(truncatingIfNeeded: firstRow + $0) }
        } else {
            rows.reserveCapacity(count)
            for (i, level) in levels.enumerated() {
                if level == UInt32(maxDefinitionLevel) {
                    rows.append(Int32(truncatingIfNeeded: firstRow + i))
                } else if level < UInt32(maxDefinitionLevel) {
                    nulls += 1
                } else {
                    throw corrupt("definition level \(level) above the maximum \(maxDefinitionLevel)")
                }
            }
        }
        switch encoding {
        case ParquetEnums.plain:
            var k = 0
            try plainValues(bytes, range, count: rows.count) {
                spans.append(ValueSpan(storage: storage, row: rows[k], start: $0, count: $1))
                k += 1
            }
        case ParquetEnums.plainDictionary, ParquetEnums.rleDictionary:
            guard hasDictionary else { throw corrupt("dictionary-encoded page without a dictionary page") }
            guard !rows.isEmpty else { return }
            guard !range.isEmpty else { throw corrupt("dictionary-encoded page without its bit width") }
            let bitWidth = Int(bytes[range.lowerBound])
            guard bitWidth <= 32 else { throw corrupt("dictionary index bit width \(bitWidth)") }
            var indices = [UInt32](repeating: 0, count: rows.count)
            do throws(ThriftError) {
                try bytes.withBytes { (raw) throws(ThriftError) in
                    var d = RLEHybridDecoder(UnsafeRawBufferPointer(rebasing: raw[(range.lowerBound + 1)..<range.upperBound]), bitWidth: bitWidth)
                    try indices.withMutableBuffer { (out) throws(ThriftError) in try d.decode(into: out) }
                }
            } catch {
                throw corrupt("dictionary indices: \(error.message)")
            }
            spans.reserveCapacity(spans.count + rows.count)
            for (k, index) in indices.enumerated() {
                guard Int(index) < dictionary.count else { throw corrupt("dictionary index \(index) out of \(dictionary.count) entries") }
                var s = dictionary[Int(index)]
                s.row = rows[k]
                spans.append(s)
            }
        case ParquetEnums.deltaLengthByteArray:
            let (lengths, end) = try deltaInts(bytes, range, count: count, atLeast: rows.count, what: "DELTA_LENGTH_BYTE_ARRAY lengths")
            var p = end
            spans.reserveCapacity(spans.count + rows.count)
            for k in 0..<rows.count {
                let length = Int(lengths[k])
                guard length >= 0, length <= range.upperBound - p else { throw corrupt("DELTA_LENGTH_BYTE_ARRAY value \(k) of \(length) bytes runs past its page") }
                spans.append(ValueSpan(storage: storage, row: rows[k], start: p, count: length))
                p += length
            }
        case ParquetEnums.deltaByteArray:
            let (prefixes, suffixesAt) = try deltaInts(bytes, range, count: count, atLeast: rows.count, what: "DELTA_BYTE_ARRAY prefix lengths")
            let (lengths, dataAt) = try deltaInts(bytes, suffixesAt..<range.upperBound, count: count, atLeast: rows.count,
                                                  what: "DELTA_BYTE_ARRAY suffix lengths")
            // Each value is rebuilt from the one before it, into a new storage.
            var total = 0, previous = 0, p = dataAt
            for k in 0..<rows.count {
                let prefix = Int(prefixes[k]), suffix = Int(lengths[k])
                guard prefix >= 0, prefix <= previous else { throw corrupt("DELTA_BYTE_ARRAY value \(k) shares \(prefix) bytes with a value of \(previous)") }
                guard suffix >= 0, suffix <= range.upperBound - p else { throw corrupt("DELTA_BYTE_ARRAY value \(k) of \(suffix) bytes runs past its page") }
                previous = prefix + suffix
                total += previous
                p += suffix
                guard total <= Self.maxRebuiltPageBytes else { throw corrupt("a DELTA_BYTE_ARRAY page rebuilds to over \(Self.maxRebuiltPageBytes >> 20) MiB") }
            }
            var rebuilt = [UInt8](repeating: 0, count: total)
            var valueStart = 0
            previous = 0
            p = dataAt
            if total > 0 {
                rebuilt.withUnsafeMutableBufferPointer { out in
                    bytes.withUnsafeBufferPointer { src in
                        let o = out.baseAddress!, s = src.baseAddress!
                        for k in 0..<rows.count {
                            let prefix = Int(prefixes[k]), suffix = Int(lengths[k])
                            // The prefix from the value just behind this one, then the suffix from the page.
                            (o + valueStart).update(from: o + valueStart - previous, count: prefix)
                            (o + valueStart + prefix).update(from: s + p, count: suffix)
                            p += suffix
                            previous = prefix + suffix
                            valueStart += previous
                        }
                    }
                }
            }
            guard storages.count < Int(Int32.max) else { throw corrupt("too many pages") }
            storages.append(ByteStorage(rebuilt))
            let rebuiltStorage = Int32(storages.count - 1)
            valueStart = 0
            spans.reserveCapacity(spans.count + rows.count)
            for k in 0..<rows.count {
                let length = Int(prefixes[k]) + Int(lengths[k])
                spans.append(ValueSpan(storage: rebuiltStorage, row: rows[k], start: valueStart, count: length))
                valueStart += length
            }
        default:
            throw ParquetError.unsupportedEncoding(path: path, column: column, encoding: ParquetEnums.encodingName(encoding))
        }
    }

    /// Bounds the bytes one DELTA_BYTE_ARRAY page may rebuild (prefixes repeat bytes of earlier values).
    static let maxRebuiltPageBytes = 1 << 31

    /// The DELTA_BINARY_PACKED integers at the start of `range` (at least `atLeast`, at most the
    /// page's `count`), and where the bytes after them start.
    private func deltaInts(_ bytes: [UInt8], _ range: Range<Int>, count: Int, atLeast: Int,
                           what: String) throws(ParquetError) -> ([Int32], Int) {
        do throws(ThriftError) {
            let (values, used) = try bytes.withBytes { (raw) throws(ThriftError) in
                try DeltaDecoder.binaryPacked(UnsafeRawBufferPointer(rebasing: raw[range]), maxCount: count)
            }
            guard values.count >= atLeast else { throw ThriftError("\(values.count) values for \(atLeast) non-null rows") }
            return (values, range.lowerBound + used)
        } catch {
            throw corrupt("\(what): \(error.message)")
        }
    }

    /// Walks `count` PLAIN BYTE_ARRAY values (4-byte little-endian length, then the bytes) in `range`.
    private func plainValues(_ bytes: [UInt8], _ range: Range<Int>, count: Int,
                             _ body: (_ start: Int, _ count: Int) -> Void) throws(ParquetError) {
        // (index of the bad value, its length or -1 when even the length is cut off)
        let failure: (Int, Int)? = bytes.withUnsafeBytes { raw in
            var p = range.lowerBound
            let end = range.upperBound
            for i in 0..<count {
                guard end - p >= 4 else { return (i, -1) }
                let length = Int(raw.loadUnaligned(fromByteOffset: p, as: UInt32.self).littleEndian)
                p += 4
                guard length <= end - p else { return (i, length) }
                body(p, length)
                p += length
            }
            return nil
        }
        if let (i, length) = failure {
            throw corrupt(length < 0 ? "PLAIN value \(i) of \(count) runs past its page"
                                     : "PLAIN value \(i) of \(length) bytes runs past its page")
        }
    }
}
