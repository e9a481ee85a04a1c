// Strict UTF-8 validation with the offset of the first bad character, for errors such as
// "'x.txt' is not valid UTF-8 (first bad byte at offset N)" (tokenizer streams, document reader).

/// Strict UTF-8 validation (no overlongs, surrogates or code points above U+10FFFF), as Python's decoder.
enum UTF8Validator {
    enum Result: Equatable {
        case valid
        /// Valid up to a character that the buffer ends inside of, starting at this index.
        case incomplete(at: Int)
        /// The character starting at this index is invalid.
        case invalid(at: Int)
    }

    static func check(_ p: UnsafeBufferPointer<UInt8>) -> Result {
        let n = p.count
        guard let base = p.baseAddress else { return .valid }
        var i = 0
        while i < n {
            // ASCII fast path, 8 bytes at a time.
            while i + 8 <= n, UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
            }
            guard i < n else { break }
            let b0 = base[i]
            if b0 < 0x80 { i += 1; continue }
            let length: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF  // allowed range of the second byte
            switch b0 {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lo = 0xA0
            case 0xED: length = 3; hi = 0x9F
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xF0: length = 4; lo = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; hi = 0x8F
            default: return .invalid(at: i)
            }
            for k in 1..<length {
                guard i + k < n else { return .incomplete(at: i) }
                let b = base[i + k]
                let ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF)
                if !ok { return .invalid(at: i) }
            }
            i += length
        }
        return .valid
    }
}
