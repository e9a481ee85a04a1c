import Foundation

/// A status line on stderr, rewritten in place on a terminal (at most a few times a second),
/// plain lines otherwise.
final class ProgressLine {
    // Starts now: a task that ends quickly prints nothing.
    private var last: UInt64 = DispatchTime.now().uptimeNanoseconds
    private let tty = isatty(2) != 0
    private var shown = false

    func update(_ text: String, force: Bool = false) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard force || now - last > (tty ? 200_000_000 : 5_000_000_000) else { return }
        last = now
        FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + text : text + "\n").utf8))
        shown = true
    }

    func finish() {
        if tty && shown { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
