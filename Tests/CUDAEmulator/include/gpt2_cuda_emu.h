// A CUDA emulator for the host tests: the kernel sources the GPU engine compiles with NVRTC are
// compiled here by the host C++ compiler (the emulated NVRTC, nvrtc.cpp, force-includes this
// header) and run on the CPU, one block at a time, each CUDA thread a fiber (its own stack) so that
// __syncthreads and the warp primitives (__shfl_*_sync, __ballot_sync, __syncwarp) are real
// barriers: a thread runs until it reaches one, and the block's scheduler resumes the threads
// once every live thread of the block (or of the warp) has arrived. Barriers reached by only part
// of a block or warp (divergence) are reported as a launch failure, not hidden. Shared memory
// (`__shared__` → function-local statics, one block at a time; `extern __shared__` → the launch's
// dynamic buffer) and global memory (host memory: the emulated driver's allocations) behave as on
// a GPU for race-free kernels. It checks the kernels' logic and our host code end to end, not
// their speed or their behaviour under real concurrency: races between threads are not
// reproduced, and math functions are the host's (expf, tanhf… differ from CUDA's by an ulp or so).
// Test infrastructure only; nothing here ships in the library.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <ucontext.h>
#include <sys/mman.h>
#include "cuda_bf16.h"

// ---- CUDA C++ keywords ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

namespace emu {

struct uint3 { unsigned x, y, z; };

// Fiber switching. On x86-64: save the callee-saved registers on the current stack, swap stack
// pointers, restore (no system call, unlike swapcontext's signal-mask save). Elsewhere: ucontext.
#if defined(__x86_64__)
extern "C" void gpt2_emu_switch(void** save, void* load);
asm(R"(
    .text
    .globl gpt2_emu_switch
    .hidden gpt2_emu_switch
    .type gpt2_emu_switch, @function
gpt2_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size gpt2_emu_switch, .-gpt2_emu_switch
)");
struct Context { void* sp = nullptr; };
inline void switchTo(Context& from, Context& to) { gpt2_emu_switch(&from.sp, to.sp); }
// A fresh context that enters `entry` (which must never return) on the stack [base, base + size).
inline void makeContext(Context& c, char* base, size_t size, void (*entry)()) {
    uintptr_t top = ((uintptr_t)(base + size)) & ~(uintptr_t)15;
    void** sp = (void**)top;
    *--sp = nullptr;             // entry's return address slot: rsp % 16 == 8 at entry, as after a call
    *--sp = (void*)entry;        // popped by `ret`
    for (int i = 0; i < 6; i++) *--sp = nullptr;   // rbp rbx r12 r13 r14 r15
    c.sp = sp;
}
#else
struct Context { ucontext_t uc; };
inline void switchTo(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
inline void makeContext(Context& c, char* base, size_t size, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = base;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
#endif

enum FiberState { Ready, Running, AtSync, AtWarp, Done };

struct Fiber {
    Context ctx;
    uint3 tid;
    int lane, warp;
    FiberState state;
    unsigned warpCalls;        // warp-synchronous calls made so far (to catch divergence)
    unsigned syncCalls;        // __syncthreads made so far
};

constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 * 1024;

struct Runtime {
    Fiber fibers[kMaxThreads];
    char* stacks = nullptr;
    Context scheduler;
    Fiber* current = nullptr;
    uint3 blockIdx, blockDim, gridDim;
    int threads = 0;
    unsigned char* dynamicShared = nullptr;
    const std::function<void()>* body = nullptr;
    // per warp, two generations of lane slots for the warp primitives
    unsigned long long slots[kMaxThreads / 32][2][32];
    unsigned arrived[kMaxThreads / 32][2];   // lanes that took part in the exchange of that generation
    char error[512];
};

static Runtime rt;

inline Fiber* cur() { return rt.current; }

[[noreturn]] inline void fail(const char* what) {
    std::snprintf(rt.error, sizeof rt.error, "%s (block %u,%u,%u thread %u,%u,%u)", what, rt.blockIdx.x, rt.blockIdx.y,
                  rt.blockIdx.z, cur()->tid.x, cur()->tid.y, cur()->tid.z);
    cur()->state = Done;
    switchTo(cur()->ctx, rt.scheduler);
    std::abort();   // never resumed
}

inline void yield(FiberState s) {
    Fiber* f = cur();
    f->state = s;
    switchTo(f->ctx, rt.scheduler);
}

inline void syncthreads() {
    cur()->syncCalls++;
    yield(AtSync);
}

// Every live lane of the warp passes the barrier together; the value exchange uses generation
// (warpCalls & 1) so a lane that runs ahead cannot overwrite what a slower lane still has to read.
template <class T> inline T warpExchange(T v, int srcLane) {
    Fiber* f = cur();
    int gen = f->warpCalls & 1;
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    rt.slots[f->warp][gen][f->lane] = bits;
    f->warpCalls++;
    yield(AtWarp);
    if (srcLane < 0 || srcLane >= 32 || !(rt.arrived[f->warp][gen] & (1u << srcLane))) {
        fail("warp shuffle reads a lane that did not take part");
    }
    T r;
    std::memcpy(&r, &rt.slots[f->warp][gen][srcLane], sizeof(T));
    return r;
}

inline unsigned ballot(bool pred) {
    Fiber* f = cur();
    int gen = f->warpCalls & 1;
    rt.slots[f->warp][gen][f->lane] = pred ? 1 : 0;
    f->warpCalls++;
    yield(AtWarp);
    unsigned mask = 0;
    for (int l = 0; l < 32; l++) {
        if ((rt.arrived[f->warp][gen] & (1u << l)) && rt.slots[f->warp][gen][l]) mask |= 1u << l;
    }
    return mask;
}

inline void fiberEntry() {
    (*rt.body)();
    cur()->state = Done;
    switchTo(cur()->ctx, rt.scheduler);
}

// Runs one block to completion; returns false with rt.error set on a failure.
inline bool runBlock() {
    int n = rt.threads;
    for (int t = 0; t < n; t++) {
        Fiber& f = rt.fibers[t];
        f.tid = {t % rt.blockDim.x, (t / rt.blockDim.x) % rt.blockDim.y, t / (rt.blockDim.x * rt.blockDim.y)};
        f.lane = t % 32;
        f.warp = t / 32;
        f.state = Ready;
        f.warpCalls = 0;
        f.syncCalls = 0;
        makeContext(f.ctx, rt.stacks + (size_t)t * kStackBytes, kStackBytes, fiberEntry);
    }
    for (;;) {
        for (int t = 0; t < n; t++) {
            if (rt.fibers[t].state != Ready) continue;
            rt.current = &rt.fibers[t];
            rt.fibers[t].state = Running;
            switchTo(rt.scheduler, rt.fibers[t].ctx);
            if (rt.error[0]) return false;
        }
        int done = 0, atSync = 0;
        for (int t = 0; t < n; t++) {
            done += rt.fibers[t].state == Done;
            atSync += rt.fibers[t].state == AtSync;
        }
        if (done == n) return true;
        bool released = false;
        // warps whose live lanes all wait at the same warp-synchronous call
        for (int w = 0; w * 32 < n; w++) {
            int waiting = 0, live = 0;
            unsigned calls = 0;
            bool same = true;
            for (int t = w * 32; t < n && t < w * 32 + 32; t++) {
                Fiber& f = rt.fibers[t];
                if (f.state == Done) continue;
                live++;
                if (f.state == AtWarp) {
                    if (waiting > 0 && f.warpCalls != calls) same = false;
                    calls = f.warpCalls;
                    waiting++;
                }
            }
            if (live > 0 && waiting == live) {
                if (!same) {
                    std::snprintf(rt.error, sizeof rt.error, "warp %d of block %u,%u,%u: lanes at different warp-synchronous calls",
                                  w, rt.blockIdx.x, rt.blockIdx.y, rt.blockIdx.z);
                    return false;
                }
                unsigned lanes = 0;
                for (int t = w * 32; t < n && t < w * 32 + 32; t++) {
                    if (rt.fibers[t].state == AtWarp) { rt.fibers[t].state = Ready; lanes |= 1u << (t % 32); }
                }
                rt.arrived[w][(calls - 1) & 1] = lanes;
                released = true;
            }
        }
        if (released) continue;
        if (atSync > 0 && atSync + done == n) {
            unsigned calls = 0;
            bool first = true;
            for (int t = 0; t < n; t++) {
                Fiber& f = rt.fibers[t];
                if (f.state != AtSync) continue;
                if (!first && f.syncCalls != calls) {
                    std::snprintf(rt.error, sizeof rt.error, "block %u,%u,%u: threads at different __syncthreads",
                                  rt.blockIdx.x, rt.blockIdx.y, rt.blockIdx.z);
                    return false;
                }
                calls = f.syncCalls;
                first = false;
                f.state = Ready;
            }
            continue;
        }
        std::snprintf(rt.error, sizeof rt.error, "block %u,%u,%u: deadlock (%d threads at __syncthreads, %d done, the rest "
                      "at a warp-synchronous call their warp does not all reach)", rt.blockIdx.x, rt.blockIdx.y, rt.blockIdx.z,
                      atSync, done);
        return false;
    }
}

// Runs a whole grid. Returns 0, or 1 with `message` filled.
inline int launch(const unsigned* grid, const unsigned* block, unsigned sharedBytes, const std::function<void()>& body,
                  char* message, size_t messageSize) {
    rt.error[0] = 0;
    int threads = (int)(block[0] * block[1] * block[2]);
    if (threads < 1 || threads > kMaxThreads) {
        std::snprintf(message, messageSize, "block of %d threads", threads);
        return 1;
    }
    if (!rt.stacks) {
        void* p = mmap(nullptr, kStackBytes * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            std::snprintf(message, messageSize, "cannot map fiber stacks");
            return 1;
        }
        rt.stacks = (char*)p;
    }
    unsigned char* dyn = nullptr;
    if (sharedBytes > 0) {
        dyn = (unsigned char*)aligned_alloc(16, (sharedBytes + 15) / 16 * 16);
        std::memset(dyn, 0xA5, sharedBytes);   // garbage, as on a GPU (uninitialised reads show up)
    }
    rt.dynamicShared = dyn;
    rt.body = &body;
    rt.threads = threads;
    rt.blockDim = {block[0], block[1], block[2]};
    rt.gridDim = {grid[0], grid[1], grid[2]};
    int status = 0;
    for (unsigned z = 0; z < grid[2] && !status; z++)
        for (unsigned y = 0; y < grid[1] && !status; y++)
            for (unsigned x = 0; x < grid[0] && !status; x++) {
                rt.blockIdx = {x, y, z};
                if (!runBlock()) {
                    std::snprintf(message, messageSize, "%s", rt.error);
                    status = 1;
                }
            }
    std::free(dyn);
    rt.dynamicShared = nullptr;
    return status;
}

inline void* dynamicSharedMemory() { return rt.dynamicShared; }

}  // namespace emu

// ---- built-in variables and functions ----
#define threadIdx (::emu::cur()->tid)
#define blockIdx (::emu::rt.blockIdx)
#define blockDim (::emu::rt.blockDim)
#define gridDim (::emu::rt.gridDim)

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { (void)emu::warpExchange<int>(0, emu::cur()->lane); }
template <class T> inline T __shfl_xor_sync(unsigned, T v, int laneMask) { return emu::warpExchange(v, emu::cur()->lane ^ laneMask); }
template <class T> inline T __shfl_sync(unsigned, T v, int srcLane) { return emu::warpExchange(v, srcLane & 31); }
inline unsigned __ballot_sync(unsigned, bool pred) { return emu::ballot(pred); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
[[noreturn]] inline void __trap() { emu::fail("__trap()"); }

inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline float __uint_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float f) { int v; std::memcpy(&v, &f, 4); return v; }
inline unsigned __float_as_uint(float f) { unsigned v; std::memcpy(&v, &f, 4); return v; }

// One block runs at a time, so atomics are plain read-modify-writes.
template <class T> inline T atomicAdd(T* p, T v) { T old = *p; *p = old + v; return old; }

template <class A, class B> inline auto min(A a, B b) -> decltype(a + b) { return a < b ? a : b; }
template <class A, class B> inline auto max(A a, B b) -> decltype(a + b) { return a < b ? b : a; }
