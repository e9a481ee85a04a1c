import Foundation
import GPT2

/// Prints hub download progress on stderr (files, MB, MB/s, ETA) through `ProgressLine`; the
/// library calls `callback` from its download threads, one call at a time.
final class HubProgressPrinter: @unchecked Sendable {
    private let lock = NSLock()
    private let line = ProgressLine()
    private let verb: String
    /// Text appended after the download figures (the streaming preparation's own progress).
    private var suffix = ""
    private var last: HubProgress?

    /// False while a consumer paces the downloads (streaming), where the rate says nothing about the end.
    private let showsETA: Bool

    init(verb: String, showsETA: Bool = true) {
        self.verb = verb
        self.showsETA = showsETA
    }

    var callback: @Sendable (HubProgress) -> Void {
        { [self] p in
            lock.lock()
            defer { lock.unlock() }
            last = p
            line.update(text(p), force: false)
        }
    }

    /// Sets the text shown after the download figures.
    func setSuffix(_ s: String) {
        lock.lock()
        defer { lock.unlock() }
        suffix = s
        if let last { line.update(text(last), force: false) } else { line.update(s, force: false) }
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        line.finish()
    }

    private func text(_ p: HubProgress) -> String {
        var s = verb + String(format: ": %d/%d files | %.1f/%.1f MB | %.1f MB/s", p.filesDone, p.filesTotal,
                       Double(p.bytesDone) / 1e6, Double(p.bytesTotal) / 1e6, p.bytesPerSecond / 1e6)
        if showsETA, p.filesDone < p.filesTotal, let eta = p.secondsRemaining, eta.isFinite {
            s += " | ETA " + formatDuration(eta)
        }
        return suffix.isEmpty ? s : s + " | " + suffix
    }
}

/// "1h02m", "5m12s", "42s".
func formatDuration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}
