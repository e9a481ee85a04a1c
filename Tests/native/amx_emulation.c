// Checks Sources/GPT2Kernels/sgemm_amx.c with the tile instructions emulated (amx_emulate.h):
// C = alpha * op(A) op(B) against an fp64 product of the bf16-rounded operands, at odd shapes, for
// every transpose and operand type. Needs AVX512-BF16 (the packers use it). Built and run by
// BF16GEMMTests.testAMXKernelUnderEmulation:
//   clang -O1 -DGPT2K_AMX_EMULATE -ISources/GPT2Kernels/include -ISources/GPT2Kernels -ITests/native \
//     Tests/native/amx_emulation.c Sources/GPT2Kernels/sgemm_amx.c Sources/GPT2Kernels/sgemm_bf16.c -lm -lpthread
#include "GPT2Kernels.h"
#include "bf16_pack.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float rnd(unsigned *s) { *s = *s * 1664525u + 1013904223u; return ((*s >> 8) / 16777216.0f) * 2 - 1; }
static double bf(float f) { uint16_t h; gpt2k_f32_to_bf16(&h, &f, 1); uint32_t u = (uint32_t)h << 16; float r; memcpy(&r, &u, 4); return r; }

static int check(int M, int N, int K, int ta, int tb, int abf, int bbf) {
    unsigned s = (unsigned)(M * 131 + N * 17 + K);
    int lda = ta ? M + 3 : K + 1, ldb = tb ? K + 2 : N + 5, ldc = N + 7;
    size_t asz = (size_t)(ta ? K : M) * lda, bsz = (size_t)(tb ? N : K) * ldb;
    float *A = malloc(asz * 4), *B = malloc(bsz * 4), *C = calloc((size_t)M * ldc, 4);
    uint16_t *Ah = malloc(asz * 2), *Bh = malloc(bsz * 2);
    for (size_t i = 0; i < asz; i++) A[i] = rnd(&s);
    for (size_t i = 0; i < bsz; i++) B[i] = rnd(&s);
    gpt2k_f32_to_bf16(Ah, A, asz);
    gpt2k_f32_to_bf16(Bh, B, bsz);
    bf16_operand a = {abf ? (const void *)Ah : (const void *)A, abf, !ta, (size_t)lda};
    bf16_operand b = {bbf ? (const void *)Bh : (const void *)B, bbf, tb, (size_t)ldb};
    float alpha = 0.75f;
    int rc = gpt2k_gemm_amx_bf16(&a, &b, M, N, K, alpha, C, ldc);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            if (j >= N) { if (C[(size_t)i * ldc + j] != 0) worst = INFINITY; continue; }
            double ref = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double x = bf(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
                double y = bf(tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
                ref += x * y; mag += fabs(x * y);
            }
            double e = fabs(C[(size_t)i * ldc + j] - alpha * ref) / ((K + 2) * 0x1p-24 * mag + 1e-30);
            if (!(e <= worst)) worst = e;
        }
    int ok = rc == 0 && worst <= 1;
    if (!ok) printf("FAIL M%d N%d K%d transA %d transB %d aBF16 %d bBF16 %d: rc %d, error %g x the fp32 bound\n", M, N, K, ta, tb, abf, bbf, rc, worst);
    free(A); free(B); free(C); free(Ah); free(Bh);
    return ok;
}

int main(void) {
    gpt2k_bf16_info info;
    gpt2k_bf16_probe(&info);
    if (!info.avx512 || !info.avx512_bf16) { printf("skip: no AVX512-BF16 for the packers\n"); return 77; }
    int shapes[][3] = {{1, 1, 1}, {16, 16, 32}, {17, 33, 31}, {40, 70, 100}, {33, 1030, 64}, {130, 40, 1030}};
    int passed = 0, failed = 0;
    for (unsigned s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++) for (int tb = 0; tb < 2; tb++) for (int abf = 0; abf < 2; abf++) for (int bbf = 0; bbf < 2; bbf++) {
            if (check(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, abf, bbf)) passed++; else failed++;
        }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
