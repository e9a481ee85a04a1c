// The TensorBoard records we write: `Event` protos (tensorboard/compat/proto/event.proto,
// summary.proto, tensor.proto) framed as TFRecords. Field numbers:
//   Event { wall_time=1 double, step=2 int64, file_version=3 string, summary=5, session_log=7 }
//   Summary { value=1 repeated Value }   Value { tag=1, simple_value=2 float, tensor=8, metadata=9 }
//   SummaryMetadata { plugin_data=1 { plugin_name=1 } }   SessionLog { status=1 (START = 1) }
//   TensorProto { dtype=1 (DT_STRING = 7), tensor_shape=2 { dim=2 { size=1 } }, string_val=8 }
// TFRecord: uint64 LE length, masked CRC-32C of those 8 bytes, the data, masked CRC-32C of the data.

/// Serialised `Event` messages, as torch.utils.tensorboard's SummaryWriter writes them.
enum EventRecord {
    /// The first record of every file: `file_version: "brain.Event:2"` (enables SessionLog purging).
    static func fileVersion(wallTime: Double, step: Int) -> [UInt8] {
        event(wallTime: wallTime, step: step) { $0.string(3, "brain.Event:2") }
    }

    /// SessionLog START at `step`: readers drop every event seen so far with step >= `step`.
    static func sessionStart(wallTime: Double, step: Int) -> [UInt8] {
        event(wallTime: wallTime, step: step) { e in
            e.message(7) { $0.int64(1, 1) }
        }
    }

    /// A scalar summary (`simple_value`, a 32-bit float as add_scalar writes it).
    static func scalar(tag: String, value: Double, wallTime: Double, step: Int) -> [UInt8] {
        event(wallTime: wallTime, step: step) { e in
            e.message(5) { summary in
                summary.message(1) { v in
                    if !tag.isEmpty { v.string(1, tag) }
                    v.float(2, Float(value))            // in a oneof: written even when 0
                }
            }
        }
    }

    /// A text summary: a one-element DT_STRING tensor tagged for the text plugin (markdown).
    static func text(tag: String, text: String, wallTime: Double, step: Int) -> [UInt8] {
        event(wallTime: wallTime, step: step) { e in
            e.message(5) { summary in
                summary.message(1) { v in
                    if !tag.isEmpty { v.string(1, tag) }
                    v.message(8) { tensor in
                        tensor.int64(1, 7)                                  // DT_STRING
                        tensor.message(2) { shape in
                            shape.message(2) { $0.int64(1, 1) }             // shape [1]
                        }
                        tensor.string(8, text)
                    }
                    v.message(9) { metadata in
                        metadata.message(1) { $0.string(1, "text") }        // plugin_data.plugin_name
                    }
                }
            }
        }
    }

    private static func event(wallTime: Double, step: Int, _ body: (inout ProtobufEncoder) -> Void) -> [UInt8] {
        // proto3 leaves out fields equal to their default (0, ""), as protoc's serialisers do.
        var e = ProtobufEncoder()
        if wallTime.bitPattern != 0 { e.double(1, wallTime) }
        if step != 0 { e.int64(2, Int64(step)) }
        body(&e)
        return e.bytes
    }

    /// `data` framed as one TFRecord.
    static func framed(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
        out += length
        withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(length)).littleEndian) { out.append(contentsOf: $0) }
        out += data
        withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(data)).littleEndian) { out.append(contentsOf: $0) }
        return out
    }
}
