import Foundation

/// A status line on stderr: rewritten in place on a terminal (at most a few times a second); on
/// a pipe or file, plain lines at most every 5 seconds and the last state at the end, so a log
/// never packs many updates onto one line.
final class ProgressLine {
    // Starts now: a task that ends quickly prints nothing on a terminal.
    private var last: UInt64 = DispatchTime.now().uptimeNanoseconds
    private let tty = isatty(2) != 0
    private var shown = false
    private var pending: String?

    func update(_ text: String, force: Bool = false) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard force || now - last > (tty ? 200_000_000 : 5_000_000_000) else {
            pending = text
            return
        }
        last = now
        pending = nil
        FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + text : text + "\n").utf8))
        shown = true
    }

    func finish() {
        if tty {
            if shown { FileHandle.standardError.write(Data("\n".utf8)) }
        } else if let pending {
            FileHandle.standardError.write(Data((pending + "\n").utf8))
        }
        pending = nil
    }
}
