// Line-buffered standard output for the command-line tool: with a pipe or a file, every printed
// line reaches it at once (a `gpt train > out.txt` killed with -9 still has its lines).
import GPT2Kernels

public enum StandardOutput {
    /// Switches C's stdout (which Swift's `print` writes through) to line buffering.
    public static func useLineBuffering() { gpt2k_line_buffer_stdout() }
}
