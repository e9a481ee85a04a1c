// A minimal protocol-buffers encoder: just the wire types the TensorBoard event protos need
// (varint, 64-bit, 32-bit, length-delimited). Fields are appended in the order the caller writes
// them; callers write them in field-number order, as protoc's serializers do.
// Reference: https://protobuf.dev/programming-guides/encoding/

/// Appends protobuf fields to a byte buffer.
struct ProtobufEncoder {
    private(set) var bytes: [UInt8] = []

    private enum WireType: UInt64 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    private mutating func key(_ field: Int, _ type: WireType) {
        varint(UInt64(field) << 3 | type.rawValue)
    }

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// An int64 / enum field (negative values take ten bytes, as protobuf's two's complement).
    mutating func int64(_ field: Int, _ value: Int64) {
        key(field, .varint)
        varint(UInt64(bitPattern: value))
    }

    /// A `double` field (little-endian IEEE 754).
    mutating func double(_ field: Int, _ value: Double) {
        key(field, .fixed64)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A `float` field (little-endian IEEE 754).
    mutating func float(_ field: Int, _ value: Float) {
        key(field, .fixed32)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A `bytes` field or an embedded message already encoded.
    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, .lengthDelimited)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// A `string` field (UTF-8).
    mutating func string(_ field: Int, _ value: String) {
        bytes(field, Array(value.utf8))
    }

    /// An embedded message, encoded by `body`.
    mutating func message(_ field: Int, _ body: (inout ProtobufEncoder) -> Void) {
        var inner = ProtobufEncoder()
        body(&inner)
        bytes(field, inner.bytes)
    }
}
