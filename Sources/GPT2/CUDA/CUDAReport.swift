// What CUDA this machine has: the libraries found (paths, versions), the headers NVRTC needs,
// the driver version and every device, gathered without ever failing (`gpt info` prints it; a
// `--device cuda` request that cannot be met throws `CUDAUnavailable` carrying it).
// `ComputeDevice` resolves --device auto|cpu|cuda against this report.
import Foundation

/// One library's state in the report.
public struct CUDALibraryStatus: Sendable {
    public let kind: CUDALibraryKind
    /// The file loaded (resolved by the loader), or the file found when loading failed.
    public let path: String?
    /// "13.0", "13.1.0", "2.27.3" …, when the library could be loaded.
    public let version: String?
    /// Why it is missing or unusable.
    public let problem: String?
    public var isLoaded: Bool { version != nil }
}

/// The CUDA environment of this machine.
public struct CUDAReport: Sendable, CustomStringConvertible {
    public var libraries: [CUDALibraryStatus] = []
    /// Directory with cuda_bf16.h for NVRTC, or nil.
    public var includeDirectory: String?
    /// Driver API version (13000 = 13.0), when the driver loaded.
    public var driverVersion: Int?
    public var devices: [CUDADeviceProperties] = []
    /// Why no device could be listed (cuInit's error, …).
    public var deviceProblem: String?
    /// The sm_XX NVRTC supports (empty when unknown).
    public var nvrtcArchs: [Int] = []
    /// Where libraries were searched, in order.
    public var searchedDirectories: [String] = []
    public var sitePackages: [String] = []

    public func library(_ kind: CUDALibraryKind) -> CUDALibraryStatus? { libraries.first { $0.kind == kind } }

    /// Reasons `--device cuda` cannot work here; empty when it can.
    public var problems: [String] {
        var p: [String] = []
        for kind in CUDALibraryKind.allCases where kind.isRequired {
            if let s = library(kind), !s.isLoaded { p.append("\(kind.displayName): \(s.problem ?? "not found")") }
        }
        if library(.nvrtc)?.isLoaded == true && includeDirectory == nil {
            p.append("no CUDA headers (cuda_bf16.h) for NVRTC: pip install nvidia-cuda-runtime, or set GPT2_CUDA_INCLUDE")
        }
        if library(.driver)?.isLoaded == true && devices.isEmpty { p.append("no CUDA device: \(deviceProblem ?? "none found")") }
        return p
    }

    /// Whether the CUDA backend can start.
    public var isUsable: Bool { problems.isEmpty }

    /// Multi-line report, as `gpt info` prints it.
    public var description: String {
        var s = "CUDA devices:\n"
        if devices.isEmpty {
            s += "  none (\(deviceProblem ?? "driver not loaded"))\n"
        }
        for d in devices {
            s += String(format: "  [%d] %@, compute capability %d.%d (sm_%d), %d SMs, %.1f GiB, %d KiB shared/block, PCI bus %d\n",
                        d.ordinal, d.name, d.computeCapability.major, d.computeCapability.minor, d.arch, d.multiprocessors,
                        Double(d.totalMemory) / 1_073_741_824, d.maxSharedMemoryPerBlockOptin / 1024, d.pciBusID)
        }
        if let v = driverVersion { s += "  driver API \(v / 1000).\(v % 1000 / 10)\n" }
        s += "CUDA libraries:\n"
        for l in libraries {
            let name = l.kind.displayName.padding(toLength: 12, withPad: " ", startingAt: 0)
            let opt = l.kind.isRequired ? "" : " (optional)"
            if let v = l.version {
                s += "  \(name) \(v)  \(l.path ?? "?")\n"
            } else {
                s += "  \(name) missing\(opt): \(l.problem ?? "not found")\n"
            }
        }
        if !nvrtcArchs.isEmpty { s += "  NVRTC targets: " + nvrtcArchs.map { "sm_\($0)" }.joined(separator: " ") + "\n" }
        s += "  headers      " + (includeDirectory.map { "\($0) (cuda_bf16.h)" } ?? "cuda_bf16.h not found") + "\n"
        s += "Searched: " + (searchedDirectories.isEmpty ? "(no directories exist)" : searchedDirectories.joined(separator: ":")) + "\n"
        if !sitePackages.isEmpty { s += "Python site-packages: " + sitePackages.joined(separator: ":") + "\n" }
        s += isUsable ? "Status: CUDA usable\n" : "Status: CUDA unavailable\n" + problems.map { "  - \($0)\n" }.joined()
        return s
    }

    /// Version integers as the libraries encode them, made readable.
    static func cublasVersion(_ v: Int) -> String { "\(v / 10000).\(v % 10000 / 100).\(v % 100)" }
    static func ncclVersionString(_ v: Int) -> String { v >= 10000 ? "\(v / 10000).\(v % 10000 / 100).\(v % 100)" : "\(v / 1000).\(v % 1000 / 100).\(v % 100)" }
    static func cudnnVersionString(_ v: Int) -> String { v >= 90000 ? "\(v / 10000).\(v % 10000 / 100).\(v % 100)" : "\(v / 1000).\(v % 1000 / 100).\(v % 100)" }
}

/// `--device cuda` was requested but CUDA cannot run here; `report` says what was found.
public struct CUDAUnavailable: Error, CustomStringConvertible, Sendable {
    public let report: CUDAReport
    public init(report: CUDAReport) { self.report = report }
    public var description: String {
        "CUDA requested but unavailable:\n" + report.problems.map { "  - \($0)\n" }.joined()
            + "\n" + report.description
            + "Run 'gpt info' for this report; see docs/GPU.md for what a GPU machine needs."
    }
}

/// Probes the machine. Never throws: every failure becomes a line of the report.
public enum CUDAProbe {
    /// - Parameter search: where to look (defaults: this machine's environment and Python).
    public static func run(search: CUDALibrarySearch = CUDALibrarySearch()) -> CUDAReport {
        var r = CUDAReport()
        r.searchedDirectories = search.libraryDirectories
        r.sitePackages = search.sitePackages
        func status(_ kind: CUDALibraryKind, _ body: (String) throws -> (version: String, path: String)) -> CUDALibraryStatus {
            // the driver falls back to the loader's own search (ld.so.cache), where it usually lives
            guard let path = search.find(kind) ?? (kind == .driver ? "libcuda.so.1" : nil) else {
                return CUDALibraryStatus(kind: kind, path: nil, version: nil, problem: "\(kind.baseName)* not found")
            }
            do {
                let (v, p) = try body(path)
                return CUDALibraryStatus(kind: kind, path: p, version: v, problem: nil)
            } catch let e as CUDAError where e.api == .loader && kind == .driver && !path.contains("/") {
                return CUDALibraryStatus(kind: kind, path: nil, version: nil,
                                         problem: "libcuda.so.1 not found: no NVIDIA driver on this machine (\(e.message))")
            } catch {
                return CUDALibraryStatus(kind: kind, path: path, version: nil, problem: "\(error)")
            }
        }
        r.libraries.append(status(.driver) { path in
            let d = try CUDADriver(path: path)
            do {
                try d.initialize()
                r.driverVersion = try d.driverVersion()
                for i in 0..<(try d.deviceCount()) { r.devices.append(try d.properties(ordinal: i)) }
            } catch {
                r.deviceProblem = "\(error)"
            }
            let v = r.driverVersion.map { "\($0 / 1000).\($0 % 1000 / 10)" } ?? "loaded"
            return (v, d.library.resolvedPath)
        })
        var nvrtcPath: String?
        r.libraries.append(status(.nvrtc) { path in
            let n = try NVRTC(path: path)
            let v = try n.version()
            r.nvrtcArchs = n.supportedArchs()
            nvrtcPath = n.path
            return ("\(v.major).\(v.minor)", n.path)
        })
        r.includeDirectory = search.findInclude(nvrtcPath: nvrtcPath)
        r.libraries.append(status(.cublasLt) { path in
            let lt = try CuBLASLt(path: path)
            return (CUDAReport.cublasVersion(lt.version), lt.library.resolvedPath)
        })
        r.libraries.append(status(.nccl) { path in
            let (v, p) = try ncclVersion(path: path)
            return (CUDAReport.ncclVersionString(v), p)
        })
        r.libraries.append(status(.cudnn) { path in
            let (v, p) = try cudnnVersion(path: path)
            return (CUDAReport.cudnnVersionString(v), p)
        })
        return r
    }
}

/// `--device`: where to run.
public enum ComputeDevice: String, CaseIterable, Sendable {
    /// CUDA when it is usable, else the CPU.
    case auto
    case cpu
    case cuda

    /// The device actually used.
    public enum Resolved: Sendable {
        case cpu
        case cuda(CUDAReport)
    }

    /// Resolves the request against `probe()`'s report.
    /// - Throws: `CUDAUnavailable` for `.cuda` when the report has problems.
    public func resolve(probe: () -> CUDAReport = { CUDAProbe.run() }) throws -> Resolved {
        switch self {
        case .cpu: return .cpu
        case .auto:
            let r = probe()
            return r.isUsable ? .cuda(r) : .cpu
        case .cuda:
            let r = probe()
            guard r.isUsable else { throw CUDAUnavailable(report: r) }
            return .cuda(r)
        }
    }
}
