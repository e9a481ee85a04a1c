// Loading the CUDA libraries at run time: dlopen/dlsym into @convention(c) function types (nothing
// is linked, so the binary builds and runs without CUDA), and `CUDAError`, the one error type of
// every CUDA call (llm.c's cudaCheck as a Swift error: call, status, our source location).
// Each library's bindings live in their own file beside this one (CUDADriver, NVRTC, CuBLASLt,
// NCCL, CuDNN), the only files that call CUDA.
// Reference: llm.c llmc/cuda_common.h; swift-system Internals/Syscalls.swift.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A device address (CUdeviceptr).
public typealias CUdeviceptr = UInt64

/// A failed CUDA call: which library and call, the status code and its name, where we made it.
public struct CUDAError: Error, CustomStringConvertible, Sendable {
    /// Which API returned the status.
    public enum API: String, Sendable { case driver, nvrtc, cublasLt, nccl, loader }
    public let api: API
    /// Status code (CUresult, nvrtcResult, cublasStatus_t; -1 for loader errors).
    public let code: Int32
    /// The call that failed, e.g. "cuMemAlloc_v2".
    public let call: String
    /// The status name and text as the library spells them, or the loader's message.
    public let message: String
    public let file: String
    public let line: Int

    public var description: String {
        "\(call) failed: \(message) (\(api.rawValue) status \(code)) at \(file):\(line)"
    }
}

/// A dlopen'ed library; symbols are looked up by name and cast to a C function type.
final class DynamicLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    /// The path passed to dlopen (a bare soname when the loader searched).
    let path: String

    init(path: String, file: String = #fileID, line: Int = #line) throws {
        // RTLD_GLOBAL is not needed: each library resolves its own dependencies (libnvrtc finds
        // libnvrtc-builtins through its RUNPATH $ORIGIN, cuBLASLt finds nothing else it needs).
        guard let h = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let msg = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw CUDAError(api: .loader, code: -1, call: "dlopen(\(path))", message: msg, file: file, line: line)
        }
        handle = h
        self.path = path
    }

    /// The symbol cast to `T` (an @convention(c) function type), or nil.
    func optional<T>(_ name: String, as type: T.Type = T.self) -> T? {
        guard let sym = dlsym(handle, name) else { return nil }
        return unsafeBitCast(sym, to: T.self)
    }

    /// The symbol cast to `T`; throws when the library lacks it (e.g. a too-old version).
    func required<T>(_ name: String, as type: T.Type = T.self, file: String = #fileID, line: Int = #line) throws -> T {
        guard let f: T = optional(name) else {
            throw CUDAError(api: .loader, code: -1, call: "dlsym(\(name))", message: "symbol missing from \(path)", file: file, line: line)
        }
        return f
    }

    /// The file the dynamic loader actually mapped (resolves sonames to full paths): the
    /// /proc/self/maps entry containing a symbol of this library (glibc's dladdr is not
    /// visible from Swift's Glibc module).
    var resolvedPath: String {
        guard let sym = dlsym(handle, resolvedPathProbe),
              let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return path }
        let address = UInt(bitPattern: sym)
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, let dash = fields[0].firstIndex(of: "-"),
                  let lo = UInt(fields[0][..<dash], radix: 16),
                  let hi = UInt(fields[0][fields[0].index(after: dash)...], radix: 16) else { continue }
            if address >= lo && address < hi { return fields[5...].joined(separator: " ") }
        }
        return path
    }
    /// Set by the owner to a symbol known to be in this library.
    var resolvedPathProbe = ""
}
