import ArgumentParser
import Foundation
import GPT2

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode whitespace-separated GPT-2 token ids to UTF-8 text.",
        discussion: "Byte sequences that are not valid UTF-8 become U+FFFD, as tiktoken's decode(errors=\"replace\").")

    @Argument(help: "File of ids (default: stdin).")
    var file: String?

    @Option(help: "Tokenizer directory (default: the embedded GPT-2 tokenizer).")
    var tokenizer: String?

    func run() throws {
        let tok = try tokenizer.map { try GPT2Tokenizer(directory: $0) } ?? GPT2Tokenizer.gpt2
        let (fd, name) = try openInput(file)
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: fd != 0)
        let data = try handle.readToEnd() ?? Data()
        var ids: [Int32] = []
        var value = 0, inNumber = false, offset = 0
        for byte in data {
            switch byte {
            case 0x30...0x39:
                value = value * 10 + Int(byte - 0x30)
                inNumber = true
                if value > Int(Int32.max) { throw CLIError("\(name): number too large at byte \(offset)") }
            case 0x20, 0x0A, 0x0D, 0x09:
                if inNumber { ids.append(Int32(value)); value = 0; inNumber = false }
            default:
                throw CLIError("\(name): expected token ids (decimal numbers), found byte 0x\(String(byte, radix: 16)) at offset \(offset)")
            }
            offset += 1
        }
        if inNumber { ids.append(Int32(value)) }
        let text = try tok.decode(ids)
        let out = FDWriter(fd: 1, path: "<stdout>")
        try out.write(text.utf8)
        try out.flush()
    }
}
