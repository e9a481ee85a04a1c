// Encodes a file or stdin of any size in bounded memory: read a block, cut it at the last safe
// split point (SafeSplit), validate and encode the part before the cut, carry the rest over.
import Foundation

extension GPT2Tokenizer {
    /// Reads UTF-8 text from `fd` until end of file and hands the ids to `emit` in order, one
    /// block at a time. Throws `TokenizerError.invalidUTF8` with the absolute byte offset.
    /// - Parameters:
    ///   - path: the name used in errors.
    ///   - blockSize: bytes read per block (memory stays within a few blocks).
    public func encodeStream(fd: Int32, path: String, allowSpecial: Bool = false, threads: Int = 1,
                             blockSize: Int = 8 << 20, emit: ([Int32]) throws -> Void) throws {
        var buffer: [UInt8] = []
        var consumed = 0          // absolute offset of buffer[0]
        var eof = false
        var readBlock = [UInt8](repeating: 0, count: blockSize)
        while !eof || !buffer.isEmpty {
            // Fill up to one block beyond the carry.
            var got = 0
            while !eof && got < blockSize {
                let r = readBlock.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, blockSize - got) }
                if r < 0 {
                    if errno == EINTR { continue }
                    throw TokenizerError.unreadable(path: path, reason: String(cString: strerror(errno)))
                }
                if r == 0 { eof = true } else { got += r }
            }
            buffer.append(contentsOf: readBlock[0..<got])
            var cut = buffer.count
            if !eof {
                let found = buffer.withUnsafeBufferPointer { SafeSplit.lastCut(in: $0, before: $0.count - 2) }
                guard let c = found else { continue }   // no safe cut yet: read more (text without ASCII spaces)
                cut = c
            }
            let ids: [Int32] = try buffer.withUnsafeBufferPointer { b in
                let part = UnsafeBufferPointer(rebasing: b[0..<cut])
                // The part ends at an ASCII cut or at the end of the input: an incomplete
                // character there is invalid too.
                switch UTF8Validator.check(part) {
                case .valid: break
                case .invalid(let at), .incomplete(let at): throw TokenizerError.invalidUTF8(path: path, offset: consumed + at)
                }
                return encode(utf8: part, allowSpecial: allowSpecial, threads: threads)
            }
            try emit(ids)
            buffer.removeFirst(cut)
            consumed += cut
        }
    }
}
