// A bounds-checked reader of the Thrift compact protocol, the encoding of Parquet's footer
// (FileMetaData) and page headers. Every length and count is checked against the bytes left, and
// nesting is limited, so a corrupt file fails with a `ThriftError` instead of a trap.
// Spec: https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md

/// A malformed Thrift structure; callers add the file name (see `ParquetError.corrupt`).
struct ThriftError: Error, Equatable {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Compact-protocol type codes (the low nibble of a field header, or of a list header).
enum ThriftType {
    static let stop: UInt8 = 0
    static let boolTrue: UInt8 = 1
    static let boolFalse: UInt8 = 2
    static let byte: UInt8 = 3
    static let i16: UInt8 = 4
    static let i32: UInt8 = 5
    static let i64: UInt8 = 6
    static let double: UInt8 = 7
    static let binary: UInt8 = 8
    static let list: UInt8 = 9
    static let set: UInt8 = 10
    static let map: UInt8 = 11
    static let structure: UInt8 = 12
    static let uuid: UInt8 = 13
}

/// Reads compact-protocol values from `bytes` starting at `position`; the buffer must outlive the reader.
struct ThriftCompactReader {
    /// Deepest nesting of structs/lists accepted (Parquet's own metadata nests about 5 deep).
    static let maxDepth = 64

    let bytes: UnsafeRawBufferPointer
    /// Offset of the next unread byte.
    var position: Int

    init(_ bytes: UnsafeRawBufferPointer, position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    var remaining: Int { bytes.count - position }

    // MARK: - Scalars

    mutating func readByte() throws(ThriftError) -> UInt8 {
        guard position < bytes.count else { throw ThriftError("truncated Thrift data at byte \(position)") }
        let b = bytes[position]
        position += 1
        return b
    }

    /// An unsigned LEB128 varint of at most 10 bytes.
    mutating func readVarint() throws(ThriftError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try readByte()
            if shift == 63, b > 1 { throw ThriftError("varint overflows 64 bits at byte \(position - 1)") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw ThriftError("varint longer than 10 bytes at byte \(position - 1)") }
        }
    }

    mutating func readI64() throws(ThriftError) -> Int64 {
        let v = try readVarint()
        return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))  // zigzag
    }

    mutating func readI32() throws(ThriftError) -> Int32 {
        let v = try readI64()
        guard let r = Int32(exactly: v) else { throw ThriftError("i32 value \(v) out of range at byte \(position)") }
        return r
    }

    mutating func readI16() throws(ThriftError) -> Int16 {
        let v = try readI64()
        guard let r = Int16(exactly: v) else { throw ThriftError("i16 value \(v) out of range at byte \(position)") }
        return r
    }

    /// The byte range of a binary/string value inside `bytes`.
    mutating func readBinaryRange() throws(ThriftError) -> Range<Int> {
        let length = try readVarint()
        guard length <= UInt64(remaining) else {
            throw ThriftError("binary length \(length) exceeds the \(remaining) bytes left at byte \(position)")
        }
        let start = position
        position += Int(length)
        return start..<position
    }

    mutating func readString() throws(ThriftError) -> String {
        let r = try readBinaryRange()
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r]), as: UTF8.self)
    }

    // MARK: - Structure

    /// The next field of a struct as (type, id), or nil at its STOP byte. `lastID` is the previous
    /// field's id (0 at the start of each struct), used for the compact delta encoding.
    mutating func readFieldHeader(lastID: inout Int16) throws(ThriftError) -> (type: UInt8, id: Int16)? {
        let b = try readByte()
        let type = b & 0x0F
        if type == ThriftType.stop { return nil }
        let delta = Int16(b >> 4)
        let id: Int16
        if delta == 0 {
            id = try readI16()
        } else {
            let (sum, overflow) = lastID.addingReportingOverflow(delta)
            guard !overflow else { throw ThriftError("field id overflow at byte \(position - 1)") }
            id = sum
        }
        lastID = id
        return (type, id)
    }

    /// A list (or set) header: (element type, element count). The count is checked against the bytes
    /// left (every element takes at least one byte), so callers may reserve capacity for it.
    mutating func readListHeader() throws(ThriftError) -> (elementType: UInt8, count: Int) {
        let b = try readByte()
        var count = UInt64(b >> 4)
        if count == 15 { count = try readVarint() }
        let elementType = b & 0x0F
        guard count <= UInt64(remaining) else {
            throw ThriftError("list of \(count) elements exceeds the \(remaining) bytes left at byte \(position)")
        }
        return (elementType, Int(count))
    }

    /// A boolean: in a field its value is the type nibble; as a list element it is one byte.
    static func fieldBool(_ type: UInt8) -> Bool { type == ThriftType.boolTrue }

    /// Skips a value of `type`.
    mutating func skip(_ type: UInt8, depth: Int = 0) throws(ThriftError) {
        guard depth < ThriftCompactReader.maxDepth else { throw ThriftError("Thrift nesting deeper than \(ThriftCompactReader.maxDepth)") }
        switch type {
        case ThriftType.boolTrue, ThriftType.boolFalse:
            break  // the value is in the field header
        case ThriftType.byte:
            _ = try readByte()
        case ThriftType.i16, ThriftType.i32, ThriftType.i64:
            _ = try readVarint()
        case ThriftType.double:
            try advance(8)
        case ThriftType.uuid:
            try advance(16)
        case ThriftType.binary:
            _ = try readBinaryRange()
        case ThriftType.list, ThriftType.set:
            let (elementType, count) = try readListHeader()
            for _ in 0..<count {
                if elementType == ThriftType.boolTrue || elementType == ThriftType.boolFalse {
                    _ = try readByte()  // list booleans take a byte each
                } else {
                    try skip(elementType, depth: depth + 1)
                }
            }
        case ThriftType.map:
            let count = try readVarint()
            guard count <= UInt64(remaining) else { throw ThriftError("map of \(count) entries exceeds the bytes left at byte \(position)") }
            if count == 0 { break }
            let kv = try readByte()
            for _ in 0..<Int(count) {
                try skipElement(kv >> 4, depth: depth + 1)
                try skipElement(kv & 0x0F, depth: depth + 1)
            }
        case ThriftType.structure:
            try skipStruct(depth: depth + 1)
        default:
            throw ThriftError("unknown Thrift type \(type) at byte \(position)")
        }
    }

    /// Skips the rest of a struct whose header has been read.
    mutating func skipStruct(depth: Int = 0) throws(ThriftError) {
        var last: Int16 = 0
        while let field = try readFieldHeader(lastID: &last) {
            try skip(field.type, depth: depth)
        }
    }

    private mutating func skipElement(_ type: UInt8, depth: Int) throws(ThriftError) {
        if type == ThriftType.boolTrue || type == ThriftType.boolFalse {
            _ = try readByte()
        } else {
            try skip(type, depth: depth)
        }
    }

    private mutating func advance(_ n: Int) throws(ThriftError) {
        guard n <= remaining else { throw ThriftError("truncated Thrift data at byte \(position)") }
        position += n
    }
}

// MARK: - Typed-throws buffer access

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body with a typed error (the standard one is `rethrows`, i.e. untyped).
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withUnsafeBytes { raw in Result { () throws(E) -> R in try body(raw) } }
        return try result.get()
    }
}

extension Array where Element == UInt32 {
    /// `withUnsafeMutableBufferPointer` for a body with a typed error.
    mutating func withMutableBuffer<E: Error>(_ body: (UnsafeMutableBufferPointer<UInt32>) throws(E) -> Void) throws(E) {
        let result: Result<Void, E> = withUnsafeMutableBufferPointer { out in Result { () throws(E) in try body(out) } }
        try result.get()
    }
}
