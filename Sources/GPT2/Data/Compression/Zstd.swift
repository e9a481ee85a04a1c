// ZSTD pages: libzstd's one-shot ZSTD_decompress (libzstd.so.1, Debian libzstd1).

/// libzstd, loaded once.
final class Zstd: @unchecked Sendable {
    private typealias FnDecompress = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int) -> Int
    private typealias FnIsError = @convention(c) (Int) -> UInt32
    private typealias FnErrorName = @convention(c) (Int) -> UnsafePointer<CChar>?

    static let library = "libzstd.so.1"
    static let package = "libzstd1"

    static let shared: Result<Zstd, CodecError> = {
        guard let lib = SystemLibrary.open(librarySonames("zstd", version: "1")),
              let z = Zstd(lib) else { return .failure(.libraryMissing(library: library, package: package)) }
        return .success(z)
    }()

    private let decompress: FnDecompress
    private let isError: FnIsError
    private let errorName: FnErrorName
    private let lib: SystemLibrary

    private init?(_ lib: SystemLibrary) {
        guard let d: FnDecompress = lib.symbol("ZSTD_decompress"), let i: FnIsError = lib.symbol("ZSTD_isError"),
              let n: FnErrorName = lib.symbol("ZSTD_getErrorName") else { return nil }
        (self.lib, decompress, isError, errorName) = (lib, d, i, n)
    }

    /// Decompresses zstd frames into exactly `size` bytes.
    func decompress(_ input: UnsafeRawBufferPointer, size: Int) throws(CodecError) -> [UInt8] {
        var failure: CodecError?
        let out = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, initialized in
            let r = decompress(buffer.baseAddress, size, input.baseAddress, input.count)
            if isError(r) != 0 {
                failure = .corrupt(errorName(r).map { String(cString: $0) } ?? "ZSTD error \(r)")
                initialized = 0
            } else if r != size {
                failure = .corrupt("decompressed to \(r) bytes, the page header says \(size)")
                initialized = min(r, size)
            } else {
                initialized = r
            }
        }
        if let failure { throw failure }
        return out
    }
}
