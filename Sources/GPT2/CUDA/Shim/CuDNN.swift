// cuDNN (libcudnn.so.N): only probed, so `gpt info` can show its version (the attention kernels are
// our own).
import Foundation

/// Version of a cuDNN library (cudnnGetVersion: 91000 = 9.10.0).
func cudnnVersion(path: String) throws -> (version: Int, resolvedPath: String) {
    let lib = try DynamicLibrary(path: path)
    lib.resolvedPathProbe = "cudnnGetVersion"
    let get: @convention(c) () -> Int = try lib.required("cudnnGetVersion")
    return (get(), lib.resolvedPath)
}

