// Where the CUDA libraries and headers are found at run time — nothing is linked at build time,
// so one `gpt` binary runs on machines with and without a GPU. Searched, in order:
// GPT2_CUDA_LIB_DIRS (colon-separated), LD_LIBRARY_PATH, $CUDA_HOME/lib64, /usr/local/cuda/lib64,
// the nvidia-* wheels of the active Python (site-packages/nvidia/*/lib), then the system library
// directories; the driver (libcuda.so.1) finally falls back to the dynamic loader's own search.
// Headers (cuda_bf16.h, for NVRTC): GPT2_CUDA_INCLUDE, else the include/ beside the NVRTC found,
// the wheels' nvidia/*/include, $CUDA_HOME/include, /usr/local/cuda/include.
// The search itself is pure (directory listings only) so tests run it on fake trees.
import Foundation

/// A CUDA library the engine can use.
public enum CUDALibraryKind: String, CaseIterable, Sendable {
    /// The driver API (libcuda), installed with the NVIDIA driver.
    case driver
    /// The runtime compiler for our embedded kernel sources.
    case nvrtc
    /// Matmuls.
    case cublasLt
    /// Multi-GPU collectives (optional).
    case nccl
    /// cuDNN (optional; not used by the kernels yet).
    case cudnn

    /// The unversioned file name, e.g. "libnvrtc.so".
    public var baseName: String {
        switch self {
        case .driver: return "libcuda.so"
        case .nvrtc: return "libnvrtc.so"
        case .cublasLt: return "libcublasLt.so"
        case .nccl: return "libnccl.so"
        case .cudnn: return "libcudnn.so"
        }
    }

    /// Versioned names to prefer, newest first.
    public var preferredNames: [String] {
        switch self {
        case .driver: return ["libcuda.so.1"]
        case .nvrtc: return ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"]
        case .cublasLt: return ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11"]
        case .nccl: return ["libnccl.so.2"]
        case .cudnn: return ["libcudnn.so.9", "libcudnn.so.8"]
        }
    }

    /// Whether `--device cuda` needs it.
    public var isRequired: Bool { self == .driver || self == .nvrtc || self == .cublasLt }

    /// Human-readable name for reports.
    public var displayName: String {
        switch self {
        case .driver: return "CUDA driver"
        case .nvrtc: return "NVRTC"
        case .cublasLt: return "cuBLASLt"
        case .nccl: return "NCCL"
        case .cudnn: return "cuDNN"
        }
    }
}

/// The library and header search. Construct with the defaults for the real machine, or with a
/// fake environment, site-packages list and system directories in tests.
public struct CUDALibrarySearch: Sendable {
    /// Environment variables consulted (GPT2_CUDA_LIB_DIRS, LD_LIBRARY_PATH, CUDA_HOME, CUDA_PATH, GPT2_CUDA_INCLUDE).
    public var environment: [String: String]
    /// Python site-packages directories whose nvidia/*/lib and nvidia/*/include are searched.
    public var sitePackages: [String]
    /// Toolkit directories, searched after the environment and before the wheels.
    public var toolkitDirectories: [String]
    /// System library directories, searched last.
    public var systemDirectories: [String]

    public static let defaultToolkitDirectories = ["/usr/local/cuda/lib64", "/usr/local/cuda/lib"]
    public static let defaultSystemDirectories = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                                                  "/usr/lib/wsl/lib", "/usr/lib"]

    /// - Parameter sitePackages: nil runs the active Python to find them (`pythonSitePackages`).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, sitePackages: [String]? = nil,
                toolkitDirectories: [String] = CUDALibrarySearch.defaultToolkitDirectories,
                systemDirectories: [String] = CUDALibrarySearch.defaultSystemDirectories) {
        self.environment = environment
        self.sitePackages = sitePackages ?? CUDALibrarySearch.pythonSitePackages(environment: environment)
        self.toolkitDirectories = toolkitDirectories
        self.systemDirectories = systemDirectories
    }

    private func pathList(_ key: String) -> [String] {
        (environment[key] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    }

    private var cudaHomes: [String] {
        ["CUDA_HOME", "CUDA_PATH"].compactMap { environment[$0] }.filter { !$0.isEmpty }
    }

    /// Subdirectories `sub` (e.g. "lib") of every site-packages/nvidia/* package, sorted by name.
    func wheelDirectories(_ sub: String) -> [String] {
        var dirs: [String] = []
        for sp in sitePackages {
            let nvidia = (sp as NSString).appendingPathComponent("nvidia")
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: nvidia) else { continue }
            for name in names.sorted() {
                let d = (nvidia as NSString).appendingPathComponent(name + "/" + sub)
                if isDirectory(d) { dirs.append(d) }
            }
        }
        return dirs
    }

    /// Every directory searched for libraries, in order, without duplicates or missing ones.
    public var libraryDirectories: [String] {
        var dirs = Settings(environment: environment).cudaLibDirs + pathList("LD_LIBRARY_PATH")
        dirs += cudaHomes.flatMap { [$0 + "/lib64", $0 + "/lib"] }
        dirs += toolkitDirectories + wheelDirectories("lib") + systemDirectories
        var seen = Set<String>()
        return dirs.filter { isDirectory($0) && seen.insert($0).inserted }
    }

    /// The best file for `kind` among `names` (one directory's listing): a preferred versioned
    /// name first, then any other versioned name (highest version), then the bare name.
    public static func bestMatch(_ kind: CUDALibraryKind, in names: [String]) -> String? {
        let base = kind.baseName
        let matches = names.filter { $0 == base || $0.hasPrefix(base + ".") }
        if matches.isEmpty { return nil }
        for p in kind.preferredNames where matches.contains(p) { return p }
        func version(_ n: String) -> [Int] { n.dropFirst(base.count + 1).split(separator: ".").map { Int($0) ?? 0 } }
        let versioned = matches.filter { $0 != base }.sorted { version($0).lexicographicallyPrecedes(version($1)) }
        return versioned.last ?? base
    }

    /// Full path of `kind` in the first directory that has it, or nil.
    public func find(_ kind: CUDALibraryKind) -> String? {
        for dir in libraryDirectories {
            // the CUDA toolkit's link-time stub of libcuda must never be loaded
            if dir.hasSuffix("/stubs") { continue }
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir),
                  let name = CUDALibrarySearch.bestMatch(kind, in: names) else { continue }
            return (dir as NSString).appendingPathComponent(name)
        }
        return nil
    }

    /// Directories searched for cuda_bf16.h, in order (GPT2_CUDA_INCLUDE alone when set).
    /// - Parameter nvrtcPath: the NVRTC library found, whose sibling include/ comes first so the
    ///   headers match the compiler's version.
    public func includeDirectories(nvrtcPath: String?) -> [String] {
        if let dir = Settings(environment: environment).cudaInclude { return [dir] }
        var dirs: [String] = []
        if let nvrtcPath {
            let lib = (nvrtcPath as NSString).deletingLastPathComponent
            dirs.append(((lib as NSString).deletingLastPathComponent as NSString).appendingPathComponent("include"))
        }
        dirs += wheelDirectories("include")
        dirs += cudaHomes.map { $0 + "/include" } + ["/usr/local/cuda/include"]
        var seen = Set<String>()
        return dirs.map { ($0 as NSString).standardizingPath }.filter { seen.insert($0).inserted }
    }

    /// The first include directory holding cuda_bf16.h, or nil.
    public func findInclude(nvrtcPath: String?) -> String? {
        includeDirectories(nvrtcPath: nvrtcPath).first {
            FileManager.default.fileExists(atPath: ($0 as NSString).appendingPathComponent("cuda_bf16.h"))
        }
    }

    private func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    // MARK: - Python site-packages

    /// Site-packages of the active Python (GPT2_PYTHON, else `python3` on PATH) from
    /// `site.getsitepackages()` plus the user site, then common prefixes scanned directly
    /// ($VIRTUAL_ENV, $CONDA_PREFIX, /usr/local, /usr, /opt/conda, ~/.local). Existing directories
    /// only. GPT2_CUDA_NO_PYTHON=1 skips running Python.
    public static func pythonSitePackages(environment: [String: String]) -> [String] {
        var dirs: [String] = []
        let settings = Settings(environment: environment)
        if !settings.cudaNoPython {
            dirs += runPython(settings.python ?? "python3")
        }
        var prefixes = ["VIRTUAL_ENV", "CONDA_PREFIX"].compactMap { environment[$0] }.filter { !$0.isEmpty }
        prefixes += ["/usr/local", "/usr", "/opt/conda"]
        if let home = environment["HOME"] { prefixes.append(home + "/.local") }
        for prefix in prefixes {
            let lib = prefix + "/lib"
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? []).sorted() where name.hasPrefix("python3") {
                dirs += [lib + "/" + name + "/site-packages", lib + "/" + name + "/dist-packages"]
            }
        }
        dirs.append("/usr/lib/python3/dist-packages")
        var seen = Set<String>()
        return dirs.filter { FileManager.default.fileExists(atPath: $0) && seen.insert($0).inserted }
    }

    /// Runs `python -c` to list its site-packages; [] when Python is missing or fails.
    static func runPython(_ python: String) -> [String] {
        let process = Process()
        if python.contains("/") {
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = []
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [python]
        }
        guard FileManager.default.isExecutableFile(atPath: process.executableURL!.path) else { return [] }
        process.arguments! += ["-c", "import site\nfor p in site.getsitepackages() + [site.getusersitepackages()]: print(p)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return [] }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }
}
