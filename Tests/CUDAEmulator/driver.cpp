// The CUDA emulator's driver API (built as libcuda.so.1 for the host tests): one device, "memory"
// is host memory (a CUdeviceptr is a host address), copies are memcpy, every call is synchronous,
// modules are the shared objects the emulated NVRTC built (dlopen'ed), and cuLaunchKernel runs
// the kernel's launch wrapper, which executes the grid on the CPU (gpt2_cuda_emu.h). The device
// reports compute capability 7.5, so the tensor-core kernels (sm_80+) are never chosen.
// Test infrastructure only.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <mutex>
#include <string>
#include <unistd.h>

namespace {
constexpr int kSuccess = 0, kInvalidValue = 1, kOutOfMemory = 2, kNotFound = 500, kLaunchFailed = 719, kInvalidImage = 200;
constexpr size_t kTotalMemory = size_t(16) << 30;
std::mutex lock;
std::map<uintptr_t, size_t> allocations;
size_t allocated = 0;
char lastLaunchError[600];

struct Module { void* handle; };
struct Function {
    int (*launch)(const unsigned*, const unsigned*, unsigned, void**, char*, size_t);
    std::string name;
};
}  // namespace

extern "C" {

int cuInit(unsigned) { return kSuccess; }
int cuDriverGetVersion(int* v) { *v = 13000; return kSuccess; }
int cuDeviceGetCount(int* n) { *n = 1; return kSuccess; }
int cuDeviceGet(int* d, int ordinal) { if (ordinal != 0) return kInvalidValue; *d = 0; return kSuccess; }
int cuDeviceGetName(char* name, int len, int) { std::snprintf(name, len, "CUDA emulator (CPU)"); return kSuccess; }
int cuDeviceTotalMem_v2(size_t* bytes, int) { *bytes = kTotalMemory; return kSuccess; }

int cuDeviceGetAttribute(int* v, int attr, int) {
    switch (attr) {
    case 16: *v = 2; break;        // multiprocessors: small grids keep the emulation quick
    case 33: *v = 0; break;        // PCI bus
    case 75: *v = 7; break;        // compute capability 7.5
    case 76: *v = 5; break;
    case 97: *v = 65536; break;    // opt-in shared memory per block
    default: *v = 0;
    }
    return kSuccess;
}

int cuDevicePrimaryCtxRetain(void** ctx, int) { static int token; *ctx = &token; return kSuccess; }
int cuDevicePrimaryCtxRelease_v2(int) { return kSuccess; }
int cuCtxSetCurrent(void*) { return kSuccess; }

int cuMemAlloc_v2(uint64_t* p, size_t bytes) {
    std::lock_guard<std::mutex> g(lock);
    if (allocated + bytes > kTotalMemory) return kOutOfMemory;
    void* m = aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!m) return kOutOfMemory;
    std::memset(m, 0xA5, bytes);   // not zeroed, as on a GPU
    allocations[(uintptr_t)m] = bytes;
    allocated += bytes;
    *p = (uint64_t)(uintptr_t)m;
    return kSuccess;
}

int cuMemFree_v2(uint64_t p) {
    std::lock_guard<std::mutex> g(lock);
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end()) return kInvalidValue;
    allocated -= it->second;
    allocations.erase(it);
    std::free((void*)(uintptr_t)p);
    return kSuccess;
}

int cuMemGetInfo_v2(size_t* free, size_t* total) {
    std::lock_guard<std::mutex> g(lock);
    *free = kTotalMemory - allocated;
    *total = kTotalMemory;
    return kSuccess;
}

int cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t bytes) { std::memcpy((void*)(uintptr_t)dst, src, bytes); return kSuccess; }
int cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t bytes) { std::memcpy(dst, (const void*)(uintptr_t)src, bytes); return kSuccess; }
int cuMemsetD32_v2(uint64_t dst, unsigned value, size_t count) {
    unsigned* p = (unsigned*)(uintptr_t)dst;
    for (size_t i = 0; i < count; i++) p[i] = value;
    return kSuccess;
}

int cuModuleLoadData(void** module, const void* image) {
    const char* bytes = (const char*)image;
    if (std::memcmp(bytes, "EMUSO\0\0\0", 8) != 0) return kInvalidImage;
    uint64_t size;
    std::memcpy(&size, bytes + 8, 8);
    char path[] = "/tmp/gpt2-cuda-emu-module-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return kInvalidImage;
    bool ok = write(fd, bytes + 16, size) == (ssize_t)size;
    close(fd);
    void* h = ok ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
    if (!h) std::fprintf(stderr, "cuda emulator: dlopen: %s\n", dlerror());
    unlink(path);
    if (!h) return kInvalidImage;
    *module = new Module{h};
    return kSuccess;
}

int cuModuleUnload(void* module) {
    dlclose(((Module*)module)->handle);
    delete (Module*)module;
    return kSuccess;
}

int cuModuleGetFunction(void** function, void* module, const char* name) {
    void* sym = dlsym(((Module*)module)->handle, (std::string("__emu_launch_") + name).c_str());
    if (!sym) return kNotFound;
    Function* f = new Function;
    f->launch = (int (*)(const unsigned*, const unsigned*, unsigned, void**, char*, size_t))sym;
    f->name = name;
    *function = f;
    return kSuccess;
}

int cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shared, void*, void** params, void**) {
    Function* f = (Function*)function;
    unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    char message[512] = {0};
    if (shared > 49152) {
        std::snprintf(lastLaunchError, sizeof lastLaunchError, "%s: %u bytes of dynamic shared memory (limit 49152 without opt-in)",
                      f->name.c_str(), shared);
        return kInvalidValue;
    }
    if (f->launch(grid, block, shared, params, message, sizeof message) != 0) {
        std::snprintf(lastLaunchError, sizeof lastLaunchError, "%s: %s", f->name.c_str(), message);
        std::fprintf(stderr, "cuda emulator: %s\n", lastLaunchError);
        return kLaunchFailed;
    }
    return kSuccess;
}

int cuStreamCreate(void** stream, unsigned) { static int token; *stream = &token; return kSuccess; }
int cuStreamDestroy_v2(void*) { return kSuccess; }
int cuStreamSynchronize(void*) { return kSuccess; }

int cuGetErrorName(int status, const char** name) {
    switch (status) {
    case kSuccess: *name = "CUDA_SUCCESS"; break;
    case kInvalidValue: *name = "CUDA_ERROR_INVALID_VALUE"; break;
    case kOutOfMemory: *name = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case kNotFound: *name = "CUDA_ERROR_NOT_FOUND"; break;
    case kInvalidImage: *name = "CUDA_ERROR_INVALID_IMAGE"; break;
    case kLaunchFailed: *name = "CUDA_ERROR_LAUNCH_FAILED"; break;
    default: *name = "CUDA_ERROR_UNKNOWN";
    }
    return kSuccess;
}

int cuGetErrorString(int status, const char** text) {
    *text = status == kLaunchFailed || status == kInvalidValue ? lastLaunchError : "emulated driver error";
    return kSuccess;
}

}  // extern "C"
