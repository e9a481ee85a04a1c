// UTF-8 validation with the offset of the first bad byte (for "file X is not UTF-8 at byte N").

enum UTF8Validation {
    /// Length of the longest valid UTF-8 prefix of `b`; equals `b.count` when all of it is valid.
    /// With `allowTruncatedEnd`, a multi-byte sequence cut by the end of the buffer stops the scan
    /// there without being an error (the caller supplies the rest later).
    static func validPrefix(_ b: UnsafeBufferPointer<UInt8>, allowTruncatedEnd: Bool = false) -> Int {
        let n = b.count
        guard let p = b.baseAddress else { return 0 }
        var i = 0
        while i < n {
            // 8 ASCII bytes at a time
            if i + 8 <= n && UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
                continue
            }
            let c = p[i]
            if c < 0x80 { i += 1; continue }
            let len: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: len = 2
            case 0xE0: len = 3; lo = 0xA0
            case 0xE1...0xEC, 0xEE, 0xEF: len = 3
            case 0xED: len = 3; hi = 0x9F
            case 0xF0: len = 4; lo = 0x90
            case 0xF1...0xF3: len = 4
            case 0xF4: len = 4; hi = 0x8F
            default: return i
            }
            if i + len > n {
                // Check what is there; a valid-so-far tail is "truncated", not invalid.
                var k = i + 1
                if k < n && !(lo...hi).contains(p[k]) { return i }
                k += 1
                while k < n { if p[k] & 0xC0 != 0x80 { return i }; k += 1 }
                return i  // either way the prefix ends here; allowTruncatedEnd tells callers it may continue
            }
            if !(lo...hi).contains(p[i + 1]) { return i }
            for k in 2..<len where p[i + k] & 0xC0 != 0x80 { return i }
            i += len
        }
        _ = allowTruncatedEnd
        return n
    }
}
