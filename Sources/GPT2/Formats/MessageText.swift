// Error messages quote text taken from files (tensor names, JSON values, header snippets, paths).
// A corrupt file can put line breaks or other control characters there, and a message must stay
// one line: `oneLine` writes them as escapes (\n, \t, \u{1B}).

/// `text` with every control character (C0, DEL, C1, U+2028/2029) written as an escape.
func oneLine<S: StringProtocol>(_ text: S) -> String {
    var out = ""
    out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
    for u in text.unicodeScalars {
        switch u.value {
        case 0x0A: out += "\\n"
        case 0x0D: out += "\\r"
        case 0x09: out += "\\t"
        case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029: out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
        default: out.unicodeScalars.append(u)
        }
    }
    return out
}
