// cuBLASLt (libcublasLt.so.N): every matmul, with fp32 accumulation and the BIAS / GELU epilogues.
import Foundation

/// The cuBLASLt twin of `cudaCheck`.
@inline(__always)
func cublasCheck(_ lt: CuBLASLt, _ result: Int32, _ call: String, file: String = #fileID, line: Int = #line) throws {
    if result != 0 { throw CUDAError(api: .cublasLt, code: result, call: call, message: lt.errorText(result), file: file, line: line) }
}

/// cuBLASLt (libcublasLt.so.N): the matmuls, with fp32 accumulation.
final class CuBLASLt: @unchecked Sendable {
    typealias Status = Int32
    typealias FnCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Status
    typealias FnDestroy = @convention(c) (OpaquePointer?) -> Status
    typealias FnGetVersion = @convention(c) () -> Int
    typealias FnDescCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32, Int32) -> Status
    typealias FnSetAttribute = @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer?, Int) -> Status
    typealias FnLayoutCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32, UInt64, UInt64, Int64) -> Status
    typealias FnHeuristic = @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
                                            OpaquePointer?, OpaquePointer?, Int32, UnsafeMutableRawPointer?,
                                            UnsafeMutablePointer<Int32>?) -> Status
    typealias FnMatmul = @convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer?, CUdeviceptr, OpaquePointer?,
                                         CUdeviceptr, OpaquePointer?, UnsafeRawPointer?, CUdeviceptr, OpaquePointer?,
                                         CUdeviceptr, OpaquePointer?, UnsafeRawPointer?, CUdeviceptr, Int, OpaquePointer?) -> Status
    typealias FnStatusName = @convention(c) (Status) -> UnsafePointer<CChar>?

    // cublasLt.h / library_types.h / cublas_api.h values (stable ABI)
    static let computeType32F: Int32 = 68          // CUBLAS_COMPUTE_32F (no TF32)
    static let dataTypeR32F: Int32 = 0             // CUDA_R_32F
    static let dataTypeR16BF: Int32 = 14           // CUDA_R_16BF
    static let descTransA: Int32 = 3               // CUBLASLT_MATMUL_DESC_TRANSA (int32)
    static let descTransB: Int32 = 4               // CUBLASLT_MATMUL_DESC_TRANSB (int32)
    static let descEpilogue: Int32 = 7             // CUBLASLT_MATMUL_DESC_EPILOGUE (uint32)
    static let descBiasPointer: Int32 = 8          // CUBLASLT_MATMUL_DESC_BIAS_POINTER (void*)
    static let epilogueDefault: UInt32 = 1         // CUBLASLT_EPILOGUE_DEFAULT
    static let epilogueBias: UInt32 = 4            // CUBLASLT_EPILOGUE_BIAS
    static let epilogueGELUAuxBias: UInt32 = 164   // CUBLASLT_EPILOGUE_GELU_AUX_BIAS = 32 | 128 | 4
    static let epilogueDGELU: UInt32 = 192         // CUBLASLT_EPILOGUE_DGELU = 64 | 128
    static let descEpilogueAuxPointer: Int32 = 11  // CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER (void*)
    static let descEpilogueAuxLd: Int32 = 12       // CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD (int64)
    static let prefMaxWorkspaceBytes: Int32 = 1    // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64)
    static let prefMinAlignmentA: Int32 = 5        // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES (uint32; B, C, D follow), default 256
    static let opN: Int32 = 0, opT: Int32 = 1      // CUBLAS_OP_N / CUBLAS_OP_T
    /// sizeof(cublasLtMatmulHeuristicResult_t): algo (64) + workspaceSize (8) + state (4) + wavesCount (4) + reserved (16).
    static let heuristicResultSize = 96

    let library: DynamicLibrary
    let cublasLtCreate: FnCreate
    let cublasLtDestroy: FnDestroy
    let cublasLtGetVersion: FnGetVersion
    let cublasLtMatmulDescCreate: FnDescCreate
    let cublasLtMatmulDescDestroy: FnDestroy
    let cublasLtMatmulDescSetAttribute: FnSetAttribute
    let cublasLtMatrixLayoutCreate: FnLayoutCreate
    let cublasLtMatrixLayoutDestroy: FnDestroy
    let cublasLtMatmulPreferenceCreate: FnCreate
    let cublasLtMatmulPreferenceDestroy: FnDestroy
    let cublasLtMatmulPreferenceSetAttribute: FnSetAttribute
    let cublasLtMatmulAlgoGetHeuristic: FnHeuristic
    let cublasLtMatmul: FnMatmul
    let cublasLtGetStatusName: FnStatusName?

    init(path: String) throws {
        let lib = try DynamicLibrary(path: path)
        lib.resolvedPathProbe = "cublasLtCreate"
        library = lib
        cublasLtCreate = try lib.required("cublasLtCreate")
        cublasLtDestroy = try lib.required("cublasLtDestroy")
        cublasLtGetVersion = try lib.required("cublasLtGetVersion")
        cublasLtMatmulDescCreate = try lib.required("cublasLtMatmulDescCreate")
        cublasLtMatmulDescDestroy = try lib.required("cublasLtMatmulDescDestroy")
        cublasLtMatmulDescSetAttribute = try lib.required("cublasLtMatmulDescSetAttribute")
        cublasLtMatrixLayoutCreate = try lib.required("cublasLtMatrixLayoutCreate")
        cublasLtMatrixLayoutDestroy = try lib.required("cublasLtMatrixLayoutDestroy")
        cublasLtMatmulPreferenceCreate = try lib.required("cublasLtMatmulPreferenceCreate")
        cublasLtMatmulPreferenceDestroy = try lib.required("cublasLtMatmulPreferenceDestroy")
        cublasLtMatmulPreferenceSetAttribute = try lib.required("cublasLtMatmulPreferenceSetAttribute")
        cublasLtMatmulAlgoGetHeuristic = try lib.required("cublasLtMatmulAlgoGetHeuristic")
        cublasLtMatmul = try lib.required("cublasLtMatmul")
        cublasLtGetStatusName = lib.optional("cublasLtGetStatusName")
    }

    var version: Int { cublasLtGetVersion() }

    /// The largest power of two up to 256 that divides the address.
    static func alignment(_ p: CUdeviceptr) -> UInt32 { p == 0 ? 256 : UInt32(1 << min(8, p.trailingZeroBitCount)) }

    func errorText(_ status: Int32) -> String {
        cublasLtGetStatusName?(status).map { String(cString: $0) } ?? "cublasStatus \(status)"
    }

    func createHandle() throws -> OpaquePointer? {
        var h: OpaquePointer?
        try cublasCheck(self, cublasLtCreate(&h), "cublasLtCreate")
        return h
    }

    func destroyHandle(_ h: OpaquePointer?) { _ = cublasLtDestroy(h) }

    /// GELU fused into a matmul (cuBLASLt's tanh-approximation GELU, as GPT-2's).
    enum GELUEpilogue {
        /// D = gelu(op(A)·op(B) + bias); the pre-activation goes to `aux` (m, n), leading dimension `ld`.
        case forward(aux: CUdeviceptr, ld: Int)
        /// D = (op(A)·op(B)) ∘ gelu'(aux), aux the forward's pre-activation.
        case backward(aux: CUdeviceptr, ld: Int)
    }

    /// Column-major D (m,n) = op(A) · op(B) + beta · C (+ bias per row when `bias` != 0), fp32
    /// compute and scale; A/B in `abType`, C/D in `cdType`. C and D may differ (D = C + A·B for a
    /// residual). Descriptors are created per call: cheap next to a GPT-2 sized matmul.
    /// - Parameters: lda/ldb/ldc/ldd leading dimensions of the matrices as stored; `gelu` fuses
    ///   GELU forward (with the bias) or its gradient.
    func matmul(handle: OpaquePointer?, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                a: CUdeviceptr, lda: Int, b: CUdeviceptr, ldb: Int, beta: Float, c: CUdeviceptr, ldc: Int,
                d: CUdeviceptr, ldd: Int, abType: Int32, cdType: Int32, bias: CUdeviceptr, gelu: GELUEpilogue? = nil,
                workspace: CUdeviceptr, workspaceBytes: Int, stream: OpaquePointer?) throws {
        var desc: OpaquePointer?
        try cublasCheck(self, cublasLtMatmulDescCreate(&desc, CuBLASLt.computeType32F, CuBLASLt.dataTypeR32F), "cublasLtMatmulDescCreate")
        defer { _ = cublasLtMatmulDescDestroy(desc) }
        var opA = transA ? CuBLASLt.opT : CuBLASLt.opN, opB = transB ? CuBLASLt.opT : CuBLASLt.opN
        try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descTransA, &opA, 4), "cublasLtMatmulDescSetAttribute(TRANSA)")
        try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descTransB, &opB, 4), "cublasLtMatmulDescSetAttribute(TRANSB)")
        var epilogue = bias != 0 ? CuBLASLt.epilogueBias : CuBLASLt.epilogueDefault
        if let gelu {
            var aux: CUdeviceptr, ld: Int64
            switch gelu {
            case .forward(let p, let l):
                precondition(bias != 0, "the GELU forward epilogue is GELU_AUX_BIAS: give a bias")
                epilogue = CuBLASLt.epilogueGELUAuxBias; aux = p; ld = Int64(l)
            case .backward(let p, let l):
                precondition(bias == 0, "the DGELU epilogue takes no bias")
                epilogue = CuBLASLt.epilogueDGELU; aux = p; ld = Int64(l)
            }
            try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descEpilogueAuxPointer, &aux, 8),
                            "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_POINTER)")
            try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descEpilogueAuxLd, &ld, 8),
                            "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)")
        }
        try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descEpilogue, &epilogue, 4), "cublasLtMatmulDescSetAttribute(EPILOGUE)")
        if bias != 0 {
            var p = bias
            try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descBiasPointer, &p, 8), "cublasLtMatmulDescSetAttribute(BIAS_POINTER)")
        }
        // stored shapes: op(A) is (m,k), so A is (m,k) or, transposed, (k,m); likewise B
        func layout(_ type: Int32, _ rows: Int, _ cols: Int, _ ld: Int) throws -> OpaquePointer? {
            var l: OpaquePointer?
            try cublasCheck(self, cublasLtMatrixLayoutCreate(&l, type, UInt64(rows), UInt64(cols), Int64(ld)), "cublasLtMatrixLayoutCreate")
            return l
        }
        let la = try transA ? layout(abType, k, m, lda) : layout(abType, m, k, lda)
        defer { _ = cublasLtMatrixLayoutDestroy(la) }
        let lb = try transB ? layout(abType, n, k, ldb) : layout(abType, k, n, ldb)
        defer { _ = cublasLtMatrixLayoutDestroy(lb) }
        let lc = try layout(cdType, m, n, ldc)
        defer { _ = cublasLtMatrixLayoutDestroy(lc) }
        let ld = try layout(cdType, m, n, ldd)
        defer { _ = cublasLtMatrixLayoutDestroy(ld) }
        var pref: OpaquePointer?
        try cublasCheck(self, cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate")
        defer { _ = cublasLtMatmulPreferenceDestroy(pref) }
        var ws = UInt64(workspaceBytes)
        try cublasCheck(self, cublasLtMatmulPreferenceSetAttribute(pref, CuBLASLt.prefMaxWorkspaceBytes, &ws, 8),
                        "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)")
        // The heuristic assumes 256-byte aligned matrices unless told otherwise; a pointer inside a
        // buffer (the decoder reads the last row of each sample) may be less aligned.
        for (i, p) in [a, b, c, d].enumerated() {
            var align = CuBLASLt.alignment(p)
            if align < 256 {
                try cublasCheck(self, cublasLtMatmulPreferenceSetAttribute(pref, CuBLASLt.prefMinAlignmentA + Int32(i), &align, 4),
                                "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)")
            }
        }
        let result = UnsafeMutableRawPointer.allocate(byteCount: CuBLASLt.heuristicResultSize, alignment: 16)
        defer { result.deallocate() }
        result.initializeMemory(as: UInt8.self, repeating: 0, count: CuBLASLt.heuristicResultSize)
        var found: Int32 = 0
        try cublasCheck(self, cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, lc, ld, pref, 1, result, &found),
                        "cublasLtMatmulAlgoGetHeuristic(m \(m) n \(n) k \(k) transA \(transA) transB \(transB) epilogue \(epilogue))")
        if found == 0 {
            throw CUDAError(api: .cublasLt, code: -1, call: "cublasLtMatmulAlgoGetHeuristic", message: "no algorithm for m \(m) n \(n) k \(k)", file: #fileID, line: #line)
        }
        var alpha: Float = 1, betaValue = beta
        // the algo is the first 64 bytes of the result
        try cublasCheck(self, cublasLtMatmul(handle, desc, &alpha, a, la, b, lb, &betaValue, c, lc, d, ld, result,
                                             workspace, workspaceBytes, stream), "cublasLtMatmul")
    }
}
