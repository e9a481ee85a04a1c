// The CUDA emulator's cuBLASLt (built as libcublasLt.so.13 for the host tests): cublasLtMatmul as
// a reference column-major GEMM on host memory, D = alpha·op(A)·op(B) + beta·C, accumulated in
// double, with the epilogues the engine uses: BIAS (+ bias per row of D), GELU_AUX_BIAS (the
// pre-activation, bias included, to aux; D = gelu(pre), tanh approximation) and DGELU
// (D = (op(A)·op(B)) · gelu'(aux)). Types: CUDA_R_32F and CUDA_R_16BF (rounded to nearest even on
// store); bias and aux have D's type, as in cuBLASLt for these epilogues. Test infrastructure only.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include "include/cuda_bf16.h"

namespace {
constexpr int kR32F = 0, kR16BF = 14;
constexpr uint32_t kDefault = 1, kBias = 4, kGELUAuxBias = 164, kDGELU = 192;

struct Desc {
    int32_t transA = 0, transB = 0;
    uint32_t epilogue = kDefault;
    uint64_t bias = 0, aux = 0;
    int64_t auxLd = 0;
};
struct Layout {
    int type;
    uint64_t rows, cols;
    int64_t ld;
};

float load(int type, const void* base, size_t i) {
    if (type == kR16BF) return __bfloat162float(((const __nv_bfloat16*)base)[i]);
    return ((const float*)base)[i];
}
void store(int type, void* base, size_t i, float v) {
    if (type == kR16BF) ((__nv_bfloat16*)base)[i] = __float2bfloat16_rn(v);
    else ((float*)base)[i] = v;
}

constexpr float kGeluScale = 0.7978845608028654f;
float gelu(float x) { return 0.5f * x * (1.0f + std::tanh(kGeluScale * (x + 0.044715f * x * x * x))); }
float geluGrad(float x) {
    float th = std::tanh(kGeluScale * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
}
}  // namespace

extern "C" {

int cublasLtCreate(void** handle) { static int token; *handle = &token; return 0; }
int cublasLtDestroy(void*) { return 0; }
size_t cublasLtGetVersion() { return 130000; }
const char* cublasLtGetStatusName(int status) { return status == 0 ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE"; }

int cublasLtMatmulDescCreate(void** desc, int, int) { *desc = new Desc; return 0; }
int cublasLtMatmulDescDestroy(void* desc) { delete (Desc*)desc; return 0; }
int cublasLtMatmulDescSetAttribute(void* d, int attr, const void* buf, size_t size) {
    Desc* desc = (Desc*)d;
    switch (attr) {
    case 3: std::memcpy(&desc->transA, buf, 4); break;
    case 4: std::memcpy(&desc->transB, buf, 4); break;
    case 7: std::memcpy(&desc->epilogue, buf, 4); break;
    case 8: std::memcpy(&desc->bias, buf, 8); break;
    case 11: std::memcpy(&desc->aux, buf, 8); break;
    case 12: std::memcpy(&desc->auxLd, buf, 8); break;
    default: return 7;   // CUBLAS_STATUS_INVALID_VALUE
    }
    (void)size;
    return 0;
}

int cublasLtMatrixLayoutCreate(void** layout, int type, uint64_t rows, uint64_t cols, int64_t ld) {
    if (type != kR32F && type != kR16BF) return 7;
    if (ld < (int64_t)rows) return 7;
    *layout = new Layout{type, rows, cols, ld};
    return 0;
}
int cublasLtMatrixLayoutDestroy(void* l) { delete (Layout*)l; return 0; }
int cublasLtMatmulPreferenceCreate(void** p) { static int token; *p = &token; return 0; }
int cublasLtMatmulPreferenceDestroy(void*) { return 0; }
int cublasLtMatmulPreferenceSetAttribute(void*, int, const void*, size_t) { return 0; }
int cublasLtMatmulAlgoGetHeuristic(void*, void*, void*, void*, void*, void*, void*, int, void* result, int* found) {
    std::memset(result, 0, 96);
    *found = 1;
    return 0;
}

int cublasLtMatmul(void*, void* d, const void* alphaPtr, uint64_t A, void* la, uint64_t B, void* lb, const void* betaPtr,
                   uint64_t C, void* lc, uint64_t D, void* ld, const void*, uint64_t, size_t, void*) {
    const Desc& desc = *(const Desc*)d;
    const Layout &a = *(const Layout*)la, &b = *(const Layout*)lb, &c = *(const Layout*)lc, &o = *(const Layout*)ld;
    float alpha, beta;
    std::memcpy(&alpha, alphaPtr, 4);
    std::memcpy(&beta, betaPtr, 4);
    size_t m = o.rows, n = o.cols;
    size_t k = desc.transA ? a.rows : a.cols;
    // shapes: op(A) (m,k), op(B) (k,n), C and D (m,n)
    if ((desc.transA ? a.cols : a.rows) != m || (desc.transB ? b.rows : b.cols) != n || (desc.transB ? b.cols : b.rows) != k
        || c.rows != m || c.cols != n) return 7;
    // op(A) as m rows of k, op(B) as n rows of k: contiguous dot products
    std::vector<float> opA(m * k), opB(n * k);
    for (size_t i = 0; i < m; i++)
        for (size_t p = 0; p < k; p++)
            opA[i * k + p] = load(a.type, (const void*)A, desc.transA ? p + i * a.ld : i + p * a.ld);
    for (size_t j = 0; j < n; j++)
        for (size_t p = 0; p < k; p++)
            opB[j * k + p] = load(b.type, (const void*)B, desc.transB ? j + p * b.ld : p + j * b.ld);
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < m; i++) {
            // fp32 accumulation, as CUBLAS_COMPUTE_32F, in 8 interleaved partial sums
            float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            const float *x = &opA[i * k], *y = &opB[j * k];
            size_t p = 0;
            for (; p + 8 <= k; p += 8)
                for (int q = 0; q < 8; q++) part[q] += x[p + q] * y[p + q];
            for (; p < k; p++) part[p % 8] += x[p] * y[p];
            float acc = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
            float v = alpha * acc;
            if (beta != 0) v += beta * load(c.type, (const void*)C, i + j * c.ld);
            switch (desc.epilogue) {
            case kDefault: break;
            case kBias: v += load(o.type, (const void*)desc.bias, i); break;
            case kGELUAuxBias: {
                v += load(o.type, (const void*)desc.bias, i);
                store(o.type, (void*)desc.aux, i + j * desc.auxLd, v);
                v = gelu(v);   // of the fp32 pre-activation, before its rounding to aux
                break;
            }
            case kDGELU: v *= geluGrad(load(o.type, (const void*)desc.aux, i + j * desc.auxLd)); break;
            default: return 15;   // CUBLAS_STATUS_NOT_SUPPORTED
            }
            store(o.type, (void*)D, i + j * o.ld, v);
        }
    }
    return 0;
}

}  // extern "C"
