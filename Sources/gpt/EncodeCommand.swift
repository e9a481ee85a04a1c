import ArgumentParser
import Foundation
import GPT2

enum IdFormat: String, ExpressibleByArgument, CaseIterable {
    case u16, u32
}

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode UTF-8 text to GPT-2 token ids (same ids as tiktoken's encode_ordinary).",
        discussion: """
        Reads FILE (or stdin) and prints the ids as decimal numbers separated by single spaces, \
        with one trailing newline. With --output, writes raw little-endian ids instead.
        """)

    @Argument(help: "UTF-8 text file (default: stdin).")
    var file: String?

    @Flag(help: "Map the literal <|endoftext|> to id 50256 (otherwise it is ordinary text).")
    var allowSpecial = false

    @Option(parsing: .unconditional, help: "Encoding threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: [.short, .long], help: "Write raw ids to this file instead of decimal text to stdout.")
    var output: String?

    @Option(help: "Raw id width for --output: u16 or u32.")
    var format: IdFormat = .u16

    @Option(help: "Tokenizer directory (encoder.json + vocab.bpe, vocab.json + merges.txt, or *.tiktoken); default: the embedded GPT-2 tokenizer.")
    var tokenizer: String?

    func validate() throws {
        try NumberOption.check("--threads", threads, atLeast: 1, atMost: NumberLimit.count)
    }

    func run() throws {
        let tok = try tokenizer.map { try GPT2Tokenizer(directory: $0) } ?? GPT2Tokenizer.gpt2
        let (fd, name) = try openInput(file)
        defer { if fd != 0 { close(fd) } }
        if let output {
            if format == .u16 && tok.vocabSize > 65536 { throw ValidationError("vocabulary of \(tok.vocabSize) does not fit u16; use --format u32") }
            try AtomicOutputFile.write(to: output) { out in
                try tok.encodeStream(fd: fd, path: name, allowSpecial: allowSpecial, threads: threads) { ids in
                    if ids.isEmpty { return }
                    switch format {
                    case .u16: try ids.map { UInt16(truncatingIfNeeded: $0).littleEndian }.withUnsafeBytes { try out.write($0.baseAddress!, count: $0.count) }
                    case .u32: try ids.map { UInt32(bitPattern: $0).littleEndian }.withUnsafeBytes { try out.write($0.baseAddress!, count: $0.count) }
                    }
                }
            }
        } else {
            let out = FDWriter(fd: 1, path: "<stdout>")
            var first = true
            try tok.encodeStream(fd: fd, path: name, allowSpecial: allowSpecial, threads: threads) { ids in
                try out.writeIds(ids, first: &first)
            }
            try out.write([0x0A])
            try out.flush()
        }
    }
}

/// Opens FILE for reading, or stdin for nil / "-". Returns the descriptor and the name for errors.
func openInput(_ file: String?) throws -> (Int32, String) {
    guard let file, file != "-" else { return (0, "<stdin>") }
    let fd = open(file, O_RDONLY)
    if fd < 0 { throw CLIError("cannot open '\(file)': \(String(cString: strerror(errno)))") }
    var st = stat()
    if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
        close(fd)
        throw CLIError("'\(file)' is a directory, not a text file")
    }
    return (fd, file)
}
