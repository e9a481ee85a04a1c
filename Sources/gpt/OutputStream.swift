// Buffered writes to a file descriptor (stdout, or a file being written), with errors that name it.
import Foundation

/// A run-time failure of a command (bad file, bad data): printed as one line, exit code 1.
/// (`ValidationError` is for bad flags and also prints the usage.)
struct CLIError: LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}

func WriteError(path: String, reason: String) -> CLIError { CLIError("cannot write '\(path)': \(reason)") }

final class FDWriter {
    let fd: Int32
    let path: String
    private var buffer: [UInt8] = []

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(1 << 20)
    }

    func write(_ bytes: some Sequence<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { try flush() }
    }

    func write(_ s: String) throws { try write(s.utf8) }

    /// Decimal ids separated by single spaces; `first` says whether a separator is needed.
    func writeIds(_ ids: [Int32], first: inout Bool) throws {
        // Format into a stack buffer of 64 KiB, then append it in one go.
        var isFirst = first
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1 << 16) { tmp in
            var n = 0
            for id in ids {
                if n > (1 << 16) - 16 {
                    buffer.append(contentsOf: UnsafeBufferPointer(rebasing: tmp[0..<n]))
                    n = 0
                    if buffer.count >= 1 << 20 { try flush() }
                }
                if !isFirst { tmp[n] = 0x20; n += 1 }
                isFirst = false
                var v = UInt32(bitPattern: id)
                var digits = 1
                var p: UInt32 = 10
                while v >= p && digits < 10 { digits += 1; p = p &* 10 }
                var k = n + digits - 1
                repeat { tmp[k] = UInt8(0x30 + v % 10); v /= 10; k -= 1 } while v > 0
                n += digits
            }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: tmp[0..<n]))
        }
        first = isFirst
        if buffer.count >= 1 << 20 { try flush() }
    }

    func flush() throws {
        var off = 0
        while off < buffer.count {
            let r = buffer.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + off, $0.count - off) }
            if r < 0 {
                if errno == EINTR { continue }
                throw WriteError(path: path, reason: String(cString: strerror(errno)))
            }
            off += r
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
