// Compression libraries of the system, opened at run time with dlopen (as BLAS and CUDA are), so
// `swift build` needs only the toolchain. Each codec file binds the few C symbols it calls.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed decompression, or a codec whose library is missing; `ParquetFile` adds the file and column.
enum CodecError: Error, Equatable {
    /// The system library is not installed (`library` is its soname, `package` the Debian package).
    case libraryMissing(library: String, package: String)
    /// The compressed data is malformed or does not have the expected size.
    case corrupt(String)
}

/// A dlopen'ed shared library, kept open for the life of the process.
final class SystemLibrary: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    /// The name dlopen accepted.
    let name: String

    private init(handle: UnsafeMutableRawPointer, name: String) {
        self.handle = handle
        self.name = name
    }

    /// The first of `names` that dlopen can load, or nil.
    static func open(_ names: [String]) -> SystemLibrary? {
        for name in names {
            if let h = dlopen(name, RTLD_NOW | RTLD_LOCAL) { return SystemLibrary(handle: h, name: name) }
        }
        return nil
    }

    /// The symbol cast to `T` (an @convention(c) function type), or nil.
    func symbol<T>(_ name: String, as type: T.Type = T.self) -> T? {
        guard let sym = dlsym(handle, name) else { return nil }
        return unsafeBitCast(sym, to: T.self)
    }
}

/// Names to try for a library: the Linux soname first, then macOS spellings.
func librarySonames(_ base: String, version: String) -> [String] {
    #if os(macOS)
    return ["lib\(base).\(version).dylib", "lib\(base).dylib", "/opt/homebrew/lib/lib\(base).dylib", "/usr/local/lib/lib\(base).dylib"]
    #else
    return ["lib\(base).so.\(version)", "lib\(base).so"]
    #endif
}
