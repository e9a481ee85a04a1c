// GZIP pages: zlib's inflate (libz.so.1, Debian zlib1g) with windowBits 16 + MAX_WBITS, which accepts
// the gzip wrapper Parquet writers put around deflate data. z_stream is laid out by hand (LP64).

/// zlib's inflate, loaded once.
final class Zlib: @unchecked Sendable {
    private typealias FnVersion = @convention(c) () -> UnsafePointer<CChar>?
    private typealias FnInflateInit2 = @convention(c) (UnsafeMutableRawPointer, Int32, UnsafePointer<CChar>?, Int32) -> Int32
    private typealias FnInflate = @convention(c) (UnsafeMutableRawPointer, Int32) -> Int32
    private typealias FnInflateEnd = @convention(c) (UnsafeMutableRawPointer) -> Int32

    static let library = "libz.so.1"
    static let package = "zlib1g"

    /// The loaded library, or the error that says how to install it.
    static let shared: Result<Zlib, CodecError> = {
        guard let lib = SystemLibrary.open(librarySonames("z", version: "1")),
              let zlib = Zlib(lib) else { return .failure(.libraryMissing(library: library, package: package)) }
        return .success(zlib)
    }()

    private let version: FnVersion
    private let inflateInit2: FnInflateInit2
    private let inflate: FnInflate
    private let inflateEnd: FnInflateEnd
    private let lib: SystemLibrary

    private init?(_ lib: SystemLibrary) {
        guard let v: FnVersion = lib.symbol("zlibVersion"), let i: FnInflateInit2 = lib.symbol("inflateInit2_"),
              let f: FnInflate = lib.symbol("inflate"), let e: FnInflateEnd = lib.symbol("inflateEnd") else { return nil }
        (self.lib, version, inflateInit2, inflate, inflateEnd) = (lib, v, i, f, e)
    }

    // z_stream on LP64: next_in, avail_in, total_in, next_out, avail_out, total_out, msg, state,
    // zalloc, zfree, opaque, data_type, adler, reserved (112 bytes; inflateInit2_ checks the size).
    private static let streamSize = 112
    private static let nextIn = 0, availIn = 8, nextOut = 24, availOut = 32, totalOut = 40, msg = 48

    /// Inflates one gzip stream into exactly `size` bytes.
    func gunzip(_ input: UnsafeRawBufferPointer, size: Int) throws(CodecError) -> [UInt8] {
        guard MemoryLayout<Int>.size == 8 else { throw .corrupt("zlib binding needs a 64-bit platform") }
        guard input.count <= Int(UInt32.max), size <= Int(UInt32.max) else { throw .corrupt("page larger than 4 GiB") }
        let stream = UnsafeMutableRawPointer.allocate(byteCount: Zlib.streamSize, alignment: 8)
        defer { stream.deallocate() }
        stream.initializeMemory(as: UInt8.self, repeating: 0, count: Zlib.streamSize)
        // Z_OK 0, Z_STREAM_END 1, Z_FINISH 4; windowBits 16 + 15: gzip wrapper, 32 KiB window.
        guard inflateInit2(stream, 16 + 15, version(), Int32(Zlib.streamSize)) == 0 else {
            throw .corrupt("inflateInit2 failed (zlib version mismatch?)")
        }
        defer { _ = inflateEnd(stream) }
        var failure: CodecError?
        let out = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, initialized in
            stream.storeBytes(of: UInt(bitPattern: input.baseAddress), toByteOffset: Zlib.nextIn, as: UInt.self)
            stream.storeBytes(of: UInt32(input.count), toByteOffset: Zlib.availIn, as: UInt32.self)
            stream.storeBytes(of: UInt(bitPattern: buffer.baseAddress), toByteOffset: Zlib.nextOut, as: UInt.self)
            stream.storeBytes(of: UInt32(size), toByteOffset: Zlib.availOut, as: UInt32.self)
            let status = inflate(stream, 4)
            let produced = Int(stream.load(fromByteOffset: Zlib.totalOut, as: UInt.self))
            initialized = min(produced, size)
            if status != 1 {
                let message = stream.load(fromByteOffset: Zlib.msg, as: UnsafePointer<CChar>?.self).map { String(cString: $0) }
                failure = .corrupt(message ?? (status == 0 || status == -5 ? "gzip data truncated or larger than the page size" : "inflate status \(status)"))
            } else if produced != size {
                failure = .corrupt("inflated to \(produced) bytes, the page header says \(size)")
            }
        }
        if let failure { throw failure }
        return out
    }
}
