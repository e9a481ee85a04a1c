// Host-side CUDA logic that needs no GPU: the library and header search on fake directory trees,
// launch configurations, NVRTC options / targets / cache keys, the encoder's token buckets, the
// kernel registry, and the no-GPU behaviour of the report and of --device resolution.
import Foundation
import XCTest
@testable import GPT2

final class CUDAHostTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("gpt2-cuda-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    /// Creates empty files (and their directories) under `root`.
    func touch(_ paths: String...) throws {
        for p in paths {
            let full = root + "/" + p
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            XCTAssertTrue(FileManager.default.createFile(atPath: full, contents: Data()))
        }
    }

    func search(env: [String: String] = [:], sitePackages: [String] = [], toolkit: [String] = [], system: [String] = []) -> CUDALibrarySearch {
        CUDALibrarySearch(environment: env, sitePackages: sitePackages.map { root + "/" + $0 },
                          toolkitDirectories: toolkit.map { root + "/" + $0 }, systemDirectories: system.map { root + "/" + $0 })
    }

    // MARK: - Library search

    func testBestMatchPrefersNewestSonameAndIgnoresLookalikes() {
        let names = ["libnvrtc.so", "libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc-builtins.so.13.0", "libnvrtc.alt.so.13"]
        XCTAssertEqual(CUDALibrarySearch.bestMatch(.nvrtc, in: names), "libnvrtc.so.13")
        XCTAssertEqual(CUDALibrarySearch.bestMatch(.nvrtc, in: ["libnvrtc-builtins.so.12.4"]), nil)
        XCTAssertEqual(CUDALibrarySearch.bestMatch(.nvrtc, in: ["libnvrtc.so.12.4.127", "libnvrtc.so.12.10.1", "libnvrtc.so"]), "libnvrtc.so.12.10.1")
        XCTAssertEqual(CUDALibrarySearch.bestMatch(.cublasLt, in: ["libcublas.so.13", "libcublasLt.so"]), "libcublasLt.so")
        XCTAssertEqual(CUDALibrarySearch.bestMatch(.driver, in: ["libcuda.so", "libcuda.so.1", "libcuda.so.580.65.06"]), "libcuda.so.1")
        XCTAssertEqual(CUDALibrarySearch.bestMatch(.cudnn, in: ["libcudnn.so.8", "libcudnn.so.9", "libcudnn_ops.so.9"]), "libcudnn.so.9")
    }

    func testWheelLayoutsAreFound() throws {
        // CUDA 13 wheels (nvidia/cu13/lib) and CUDA 12 wheels (nvidia/<package>/lib) side by side
        try touch("sp/nvidia/cu13/lib/libnvrtc.so.13", "sp/nvidia/cu13/lib/libnvrtc-builtins.so.13.0",
                  "sp/nvidia/cu13/lib/libcublasLt.so.13", "sp/nvidia/cu13/include/cuda_bf16.h",
                  "sp/nvidia/nccl/lib/libnccl.so.2", "sp/nvidia/cudnn/lib/libcudnn.so.9")
        let s = search(sitePackages: ["sp"])
        XCTAssertEqual(s.find(.nvrtc), root + "/sp/nvidia/cu13/lib/libnvrtc.so.13")
        XCTAssertEqual(s.find(.cublasLt), root + "/sp/nvidia/cu13/lib/libcublasLt.so.13")
        XCTAssertEqual(s.find(.nccl), root + "/sp/nvidia/nccl/lib/libnccl.so.2")
        XCTAssertEqual(s.find(.cudnn), root + "/sp/nvidia/cudnn/lib/libcudnn.so.9")
        XCTAssertNil(s.find(.driver))
        XCTAssertEqual(s.findInclude(nvrtcPath: s.find(.nvrtc)), root + "/sp/nvidia/cu13/include")
    }

    func testCUDA12WheelHeadersComeFromCudaRuntime() throws {
        try touch("sp/nvidia/cuda_nvrtc/lib/libnvrtc.so.12", "sp/nvidia/cuda_runtime/include/cuda_bf16.h",
                  "sp/nvidia/cuda_nvrtc/include/nvrtc.h")
        let s = search(sitePackages: ["sp"])
        let nvrtc = s.find(.nvrtc)
        XCTAssertEqual(nvrtc, root + "/sp/nvidia/cuda_nvrtc/lib/libnvrtc.so.12")
        // nvrtc's own include/ has no cuda_bf16.h, so the runtime wheel's is used
        XCTAssertEqual(s.findInclude(nvrtcPath: nvrtc), root + "/sp/nvidia/cuda_runtime/include")
    }

    func testSearchOrderEnvironmentThenToolkitThenWheelsThenSystem() throws {
        try touch("env/libnvrtc.so.12", "ld/libnvrtc.so.13", "ld/libcublasLt.so.12", "toolkit/lib64/libcublasLt.so.13",
                  "sp/nvidia/cu13/lib/libcublasLt.so.13", "sp/nvidia/cu13/lib/libnccl.so.2", "sys/libcuda.so.1", "sys/libnccl.so.2")
        var s = search(env: ["GPT2_CUDA_LIB_DIRS": root + "/env:" + root + "/missing", "LD_LIBRARY_PATH": root + "/ld"],
                       sitePackages: ["sp"], toolkit: ["toolkit/lib64"], system: ["sys"])
        XCTAssertEqual(s.find(.nvrtc), root + "/env/libnvrtc.so.12", "GPT2_CUDA_LIB_DIRS comes first")
        XCTAssertEqual(s.find(.cublasLt), root + "/ld/libcublasLt.so.12", "then LD_LIBRARY_PATH")
        XCTAssertEqual(s.find(.nccl), root + "/sp/nvidia/cu13/lib/libnccl.so.2", "wheels before system directories")
        XCTAssertEqual(s.find(.driver), root + "/sys/libcuda.so.1")
        XCTAssertFalse(s.libraryDirectories.contains(root + "/missing"), "missing directories are dropped")
        s.environment = [:]
        XCTAssertEqual(s.find(.cublasLt), root + "/toolkit/lib64/libcublasLt.so.13", "toolkit before wheels")
        XCTAssertEqual(s.libraryDirectories, [root + "/toolkit/lib64", root + "/sp/nvidia/cu13/lib", root + "/sys"])
    }

    func testCudaHomeAndStubsDirectory() throws {
        try touch("cuda/lib64/stubs/libcuda.so", "cuda/lib64/libnvrtc.so.12", "cuda/include/cuda_bf16.h")
        let s = search(env: ["CUDA_HOME": root + "/cuda", "LD_LIBRARY_PATH": root + "/cuda/lib64/stubs"])
        XCTAssertNil(s.find(.driver), "the toolkit's link stub of libcuda is never used")
        XCTAssertEqual(s.find(.nvrtc), root + "/cuda/lib64/libnvrtc.so.12")
        XCTAssertEqual(s.findInclude(nvrtcPath: s.find(.nvrtc)), root + "/cuda/include")
    }

    func testIncludeOverride() throws {
        try touch("sp/nvidia/cu13/include/cuda_bf16.h", "mine/cuda_bf16.h")
        XCTAssertEqual(search(env: ["GPT2_CUDA_INCLUDE": root + "/mine"], sitePackages: ["sp"]).findInclude(nvrtcPath: nil), root + "/mine")
        XCTAssertNil(search(env: ["GPT2_CUDA_INCLUDE": root + "/nothing"], sitePackages: ["sp"]).findInclude(nvrtcPath: nil),
                     "an explicit include directory is not second-guessed")
        XCTAssertEqual(search(sitePackages: ["sp"]).findInclude(nvrtcPath: nil), root + "/sp/nvidia/cu13/include")
    }

    func testPythonSitePackagesScan() throws {
        try FileManager.default.createDirectory(atPath: root + "/venv/lib/python3.12/site-packages", withIntermediateDirectories: true)
        let dirs = CUDALibrarySearch.pythonSitePackages(environment: ["GPT2_CUDA_NO_PYTHON": "1", "VIRTUAL_ENV": root + "/venv"])
        XCTAssertEqual(dirs.first, root + "/venv/lib/python3.12/site-packages")
        XCTAssertEqual(CUDALibrarySearch.runPython(root + "/no-such-python"), [])
    }

    // MARK: - Launch configuration

    func testLaunchConfigurations() {
        let ew = CUDALaunchConfig.elementwise(count: 10, multiprocessors: 132)
        XCTAssertEqual(ew.grid, .init(1)); XCTAssertEqual(ew.block, .init(256))
        XCTAssertEqual(CUDALaunchConfig.elementwise(count: 1 << 30, multiprocessors: 132).grid.x, 132 * 16)
        XCTAssertEqual(CUDALaunchConfig.cover(count: 513).grid.x, 3)
        XCTAssertEqual(CUDALaunchConfig.layerNormForward(rows: 8192).grid.x, 1024)
        XCTAssertEqual(CUDALaunchConfig.layerNormForward(rows: 1).grid.x, 1)
        // LayerNorm backward: <= 8 columns per thread, warps only, 128..1024 threads
        for (C, threads) in [(32, 128), (768, 128), (1024, 128), (1280, 160), (1600, 224), (8192, 1024)] {
            let l = CUDALaunchConfig.layerNormBackward(rows: 4096, C: C, multiprocessors: 132)
            XCTAssertEqual(Int(l.block.x), threads, "C=\(C)")
            XCTAssertEqual(Int(l.block.x) % 32, 0)
            XCTAssertGreaterThanOrEqual(Int(l.block.x) * CUDALaunchConfig.layerNormMaxColumnsPerThread, C)
        }
        XCTAssertEqual(CUDALaunchConfig.layerNormBackward(rows: 5, C: 768, multiprocessors: 132).grid.x, 5)
        XCTAssertEqual(CUDALaunchConfig.layerNormBackward(rows: 65536, C: 768, multiprocessors: 132).grid.x, 1056)
        let bb = CUDALaunchConfig.biasBackward(rows: 8192, OC: 768, elementSize: 2, multiprocessors: 132)
        XCTAssertEqual(bb.grid.x, 3); XCTAssertEqual(bb.block, .init(32, 16))   // 256 bf16 columns per block
        XCTAssertEqual(bb.grid.y, 88)   // ceil(132*2 / 3) chunks
        XCTAssertEqual(CUDALaunchConfig.biasBackward(rows: 65536, OC: 3072, elementSize: 2, multiprocessors: 132).grid, .init(12, 22))
        XCTAssertEqual(CUDALaunchConfig.biasBackward(rows: 3, OC: 50, elementSize: 4, multiprocessors: 1).grid, .init(1, 1))
        let att = CUDALaunchConfig.attentionQueryTiles(B: 4, T: 1024, NH: 12)
        XCTAssertEqual(att.grid, .init(32, 48)); XCTAssertEqual(att.block, .init(128))
        XCTAssertEqual(CUDALaunchConfig.attentionKeyTiles(B: 2, T: 33, NH: 4).grid, .init(2, 8))
        XCTAssertEqual(CUDALaunchConfig.encoderBackwardWTE(buckets: 700, C: 768).block, .init(256))
        XCTAssertEqual(CUDALaunchConfig.encoderBackwardWTE(buckets: 0, C: 8).grid, .init(1))
        XCTAssertEqual(CUDALaunchConfig.vocabChunk(Vp: 50304), 8192)
        XCTAssertEqual(CUDALaunchConfig.vocabChunk(Vp: 128), 128)
        XCTAssertEqual(CUDALaunchConfig.vocabChunk(Vp: 50304, maxChunk: 1000), 896)
        XCTAssertEqual(CUDALaunchConfig.gradNorm().partial.grid.x, 1024)
    }

    func testLayerNormBackwardWarpLaunch() {
        // GPT-2 124M, bf16: 8 warps, 48 KiB of shared memory (8 × 2 × 768 floats), 4 blocks per SM
        let l = CUDALaunchConfig.layerNormBackwardWarp(rows: 65536, C: 768, elementSize: 2, multiprocessors: 132)!
        XCTAssertEqual(l.block.x, 256)
        XCTAssertEqual(l.sharedBytes, 49152)
        XCTAssertEqual(l.grid.x, 528)
        // GPT-2 XL (C=1600): fewer warps so the slices fit in 48 KiB
        let xl = CUDALaunchConfig.layerNormBackwardWarp(rows: 1024, C: 1600, elementSize: 2, multiprocessors: 132)!
        XCTAssertEqual(xl.block.x, 96)
        XCTAssertLessThanOrEqual(xl.sharedBytes, 49152)
        // few rows: no more blocks than rows need
        XCTAssertEqual(CUDALaunchConfig.layerNormBackwardWarp(rows: 20, C: 256, elementSize: 4, multiprocessors: 132)!.grid.x, 3)
        // C not a whole number of 16-byte packs, or too wide: the block kernel is used
        XCTAssertNil(CUDALaunchConfig.layerNormBackwardWarp(rows: 64, C: 100, elementSize: 2, multiprocessors: 132))
        XCTAssertNil(CUDALaunchConfig.layerNormBackwardWarp(rows: 64, C: 8192, elementSize: 4, multiprocessors: 132))
        XCTAssertEqual(CUDALaunchConfig.warpPerRow(rows: 17).grid.x, 3)
    }

    func testEncoderBuckets() {
        let b = EncoderBuckets(inputs: [5, 3, 5, 9, 3, 5])
        XCTAssertEqual(b.tokens, [3, 5, 9])
        XCTAssertEqual(b.starts, [0, 2, 5, 6])
        XCTAssertEqual(b.positions, [1, 4, 0, 2, 5, 3])
        XCTAssertEqual(EncoderBuckets(inputs: []).starts, [0])
        // the counting sort equals a plain sort by (token, position) on random ids
        var rng = SplitMix64(seed: 3)
        let ids = (0..<5000).map { _ in Int32(rng.next() % 700) }
        let r = EncoderBuckets(inputs: ids)
        let order = (0..<ids.count).sorted { ids[$0] != ids[$1] ? ids[$0] < ids[$1] : $0 < $1 }
        XCTAssertEqual(r.positions, order.map { Int32($0) })
        XCTAssertEqual(r.tokens, Array(Set(ids)).sorted())
        for k in 0..<r.count {
            XCTAssertTrue(r.positions[Int(r.starts[k])..<Int(r.starts[k + 1])].allSatisfy { ids[Int($0)] == r.tokens[k] })
        }
    }

    // MARK: - NVRTC options, targets and cache keys

    func testNVRTCOptionsAndTargets() {
        let opts = NVRTCCompiler.options(target: "sm_90", includeDirectory: "/inc",
                                         defines: NVRTCCompiler.defines(precision: .bf16, headSize: 64))
        XCTAssertEqual(opts, ["--gpu-architecture=sm_90", "--std=c++17", "-default-device", "-I/inc", "-DGPT2_BF16", "-DATT_HS=64"])
        XCTAssertFalse(opts.contains { $0.hasPrefix("-O") }, "NVRTC rejects -O3")
        XCTAssertEqual(NVRTCCompiler.defines(precision: .fp32, headSize: 8), ["ATT_HS=8"])
        XCTAssertEqual(NVRTCCompiler.target(deviceArch: 90, supported: [75, 80, 86, 89, 90], canEmitCUBIN: true)?.target, "sm_90")
        XCTAssertEqual(NVRTCCompiler.target(deviceArch: 90, supported: [], canEmitCUBIN: true)?.format, .cubin)
        let newer = NVRTCCompiler.target(deviceArch: 120, supported: [75, 80, 90, 100], canEmitCUBIN: true)
        XCTAssertEqual(newer?.target, "compute_100"); XCTAssertEqual(newer?.format, .ptx)
        XCTAssertEqual(NVRTCCompiler.target(deviceArch: 90, supported: [80, 90], canEmitCUBIN: false)?.target, "compute_90")
        XCTAssertNil(NVRTCCompiler.target(deviceArch: 70, supported: [75, 80], canEmitCUBIN: true))
    }

    func testCacheKeys() {
        let k = NVRTCCompiler.cacheKey(program: "abc", options: ["-DX"], nvrtcVersion: (13, 0))
        XCTAssertEqual(k.count, 32)
        XCTAssertEqual(k, NVRTCCompiler.cacheKey(program: "abc", options: ["-DX"], nvrtcVersion: (13, 0)))
        var keys: Set<String> = [k]
        keys.insert(NVRTCCompiler.cacheKey(program: "abd", options: ["-DX"], nvrtcVersion: (13, 0)))
        keys.insert(NVRTCCompiler.cacheKey(program: "abc", options: ["-DY"], nvrtcVersion: (13, 0)))
        keys.insert(NVRTCCompiler.cacheKey(program: "abc", options: ["-DX"], nvrtcVersion: (13, 1)))
        keys.insert(NVRTCCompiler.cacheKey(program: "abc", options: ["-D", "X"], nvrtcVersion: (13, 0)))
        XCTAssertEqual(keys.count, 5, "every input changes the key")
        XCTAssertEqual(NVRTCCompiler.cacheFileName(unit: "gelu", target: "sm_90", format: .cubin, precision: .bf16,
                                                   nvrtcVersion: (13, 0), key: "ff"), "gelu-bf16-sm_90-nvrtc13.0-ff.cubin")
        XCTAssertEqual(NVRTCCompiler.defaultCacheDirectory(environment: ["GPT2_CUDA_CACHE": "/c"]), "/c")
        XCTAssertNil(NVRTCCompiler.defaultCacheDirectory(environment: ["GPT2_CUDA_CACHE": "none", "HOME": "/h"]))
        XCTAssertEqual(NVRTCCompiler.defaultCacheDirectory(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"]), "/x/gpt2-swift/cuda")
        XCTAssertEqual(NVRTCCompiler.defaultCacheDirectory(environment: ["HOME": "/h"]), "/h/.cache/gpt2-swift/cuda")
    }

    // MARK: - Kernel registry

    func testKernelRegistry() {
        let all = CUDAKernelSource.all
        XCTAssertEqual(Set(all.map(\.name)).count, all.count)
        let kernels = all.flatMap(\.kernels)
        XCTAssertEqual(Set(kernels).count, kernels.count, "kernel names are unique across units")
        for s in all {
            for k in s.kernels {
                XCTAssertTrue(s.code.contains("extern \"C\" __global__ void \(k)("), "\(s.name): \(k) not defined")
            }
            let defined = s.code.components(separatedBy: "extern \"C\" __global__ void ").count - 1
            XCTAssertEqual(defined, s.kernels.count, "\(s.name) defines kernels it does not list")
            XCTAssertTrue(s.program.hasPrefix(CUDAKernelSource.prelude))
        }
        XCTAssertTrue(CUDAKernelSource.prelude.contains("#ifdef GPT2_BF16"))
    }

    // MARK: - No-GPU behaviour

    func testReportAndDeviceResolutionWithoutUsableCUDA() throws {
        let report = CUDAProbe.run()
        if report.isUsable { throw XCTSkip("this machine has a usable CUDA device") }
        XCTAssertFalse(report.problems.isEmpty)
        XCTAssertTrue(report.description.contains("Status: CUDA unavailable"), report.description)
        XCTAssertTrue(report.description.contains("CUDA libraries:"))
        XCTAssertEqual(report.libraries.map(\.kind), CUDALibraryKind.allCases)
        guard case .cpu = try ComputeDevice.auto.resolve(probe: { report }) else { return XCTFail("auto must fall back to the CPU") }
        guard case .cpu = try ComputeDevice.cpu.resolve(probe: { report }) else { return XCTFail("cpu is cpu") }
        XCTAssertThrowsError(try ComputeDevice.cuda.resolve(probe: { report })) { error in
            guard let e = error as? CUDAUnavailable else { return XCTFail("unexpected \(error)") }
            XCTAssertTrue(e.description.contains("CUDA requested but unavailable"), e.description)
            XCTAssertTrue(e.description.contains("gpt info"))
        }
    }

    func testReportProblems() {
        var r = CUDAReport()
        r.libraries = [
            CUDALibraryStatus(kind: .driver, path: "/x/libcuda.so.1", version: "13.0", problem: nil),
            CUDALibraryStatus(kind: .nvrtc, path: "/x/libnvrtc.so.13", version: "13.0", problem: nil),
            CUDALibraryStatus(kind: .cublasLt, path: nil, version: nil, problem: "libcublasLt.so* not found"),
            CUDALibraryStatus(kind: .nccl, path: nil, version: nil, problem: "libnccl.so* not found"),
        ]
        r.deviceProblem = "cuInit failed: CUDA_ERROR_NO_DEVICE"
        let problems = r.problems
        XCTAssertEqual(problems.count, 3, "\(problems)")   // cuBLASLt, headers, device; NCCL is optional
        XCTAssertTrue(problems.contains { $0.hasPrefix("cuBLASLt") })
        XCTAssertTrue(problems.contains { $0.contains("cuda_bf16.h") })
        XCTAssertTrue(problems.contains { $0.contains("CUDA_ERROR_NO_DEVICE") })
        XCTAssertTrue(r.description.contains("NCCL         missing (optional): libnccl.so* not found"), r.description)
        XCTAssertEqual(CUDAReport.cublasVersion(130100), "13.1.0")
        XCTAssertEqual(CUDAReport.ncclVersionString(22703), "2.27.3")
        XCTAssertEqual(CUDAReport.cudnnVersionString(91000), "9.10.0")
        XCTAssertEqual(CUDAReport.cudnnVersionString(8902), "8.9.2")
    }

    func testCUDAErrorDescription() {
        let e = CUDAError(api: .driver, code: 100, call: "cuInit", message: "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected",
                          file: "GPT2/CUDAShim.swift", line: 42)
        XCTAssertEqual(e.description, "cuInit failed: CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected (driver status 100) at GPT2/CUDAShim.swift:42")
        XCTAssertThrowsError(try cudaCheck(2, "cuMemAlloc_v2")) { error in
            let e = error as? CUDAError
            XCTAssertEqual(e?.call, "cuMemAlloc_v2"); XCTAssertEqual(e?.code, 2)
            XCTAssertTrue(e?.file.hasSuffix("CUDAHostTests.swift") == true, e?.file ?? "")
        }
        XCTAssertNoThrow(try cudaCheck(0, "cuInit"))
    }
}
