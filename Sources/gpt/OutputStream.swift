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
        var digits = [UInt8](repeating: 0, count: 12)
        for id in ids {
            if !first { buffer.append(0x20) }
            first = false
            var v = Int(id), k = 12
            if v == 0 { k -= 1; digits[k] = 0x30 }
            while v > 0 { k -= 1; digits[k] = UInt8(0x30 + v % 10); v /= 10 }
            buffer.append(contentsOf: digits[k...])
            if buffer.count >= 1 << 20 { try flush() }
        }
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
