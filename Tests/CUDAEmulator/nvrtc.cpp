// The CUDA emulator's NVRTC (built as libnvrtc.so.13 for the host tests): "compiles" a kernel
// program by handing it to the host C++ compiler ($CUDA_EMU_CXX, else clang++) with
// gpt2_cuda_emu.h force-included and -D__CUDA_ARCH__=750, after two rewrites: `extern __shared__
// T name[];` becomes a pointer to the launch's dynamic shared memory, and every `extern "C"
// __global__` kernel gets a launch wrapper `__emu_launch_<name>` that unpacks cuLaunchKernel's
// parameter array by the kernel's own signature. The "CUBIN" is the resulting shared object,
// prefixed by a magic and its size, which the emulated driver writes out and dlopens.
// Test infrastructure only.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>
#include <unistd.h>
#include <sys/wait.h>

namespace {
struct Program {
    std::string source, name, log;
    std::vector<char> image;
};

// "const floatX* logits" -> ("const floatX*", "logits")
bool splitParameter(std::string p, std::string& type, std::string& name) {
    while (!p.empty() && isspace((unsigned char)p.back())) p.pop_back();
    size_t i = p.size();
    while (i > 0 && (isalnum((unsigned char)p[i - 1]) || p[i - 1] == '_')) i--;
    if (i == p.size()) return false;
    name = p.substr(i);
    type = p.substr(0, i);
    return true;
}

std::string rewrite(const std::string& src) {
    static const std::regex dynamicShared(R"(extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;)");
    std::string out = std::regex_replace(src, dynamicShared, "$1* $2 = ($1*)::emu::dynamicSharedMemory();");
    static const std::regex kernel(R"(extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\))");
    std::string wrappers = "\n// ---- launch wrappers (emulated NVRTC) ----\n";
    for (std::sregex_iterator it(out.begin(), out.end(), kernel), end; it != end; ++it) {
        std::string name = (*it)[1], params = (*it)[2];
        std::vector<std::string> args;
        std::stringstream ss(params);
        std::string p;
        int i = 0;
        while (std::getline(ss, p, ',')) {
            std::string type, pname;
            if (!splitParameter(p, type, pname)) continue;
            args.push_back("*reinterpret_cast<" + type + " *>(p[" + std::to_string(i++) + "])");
        }
        wrappers += "extern \"C\" int __emu_launch_" + name +
                    "(const unsigned* grid, const unsigned* block, unsigned shared, void** p, char* message, size_t messageSize) {\n"
                    "    std::function<void()> body = [&] { " + name + "(";
        for (size_t k = 0; k < args.size(); k++) wrappers += (k ? ", " : "") + args[k];
        wrappers += "); };\n    return ::emu::launch(grid, block, shared, body, message, messageSize);\n}\n";
    }
    return out + wrappers;
}

std::string shellQuote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}
}  // namespace

extern "C" {

int nvrtcVersion(int* major, int* minor) { *major = 13; *minor = 0; return 0; }
int nvrtcGetNumSupportedArchs(int* n) { *n = 1; return 0; }
int nvrtcGetSupportedArchs(int* archs) { archs[0] = 75; return 0; }

const char* nvrtcGetErrorString(int status) {
    switch (status) {
    case 0: return "NVRTC_SUCCESS";
    case 6: return "NVRTC_ERROR_COMPILATION";
    default: return "NVRTC_ERROR (emulated)";
    }
}

int nvrtcCreateProgram(void** prog, const char* src, const char* name, int, const char* const*, const char* const*) {
    Program* p = new Program;
    p->source = src;
    p->name = name ? name : "program.cu";
    *prog = p;
    return 0;
}

int nvrtcDestroyProgram(void** prog) {
    delete (Program*)*prog;
    *prog = nullptr;
    return 0;
}

int nvrtcCompileProgram(void* prog, int numOptions, const char* const* options) {
    Program* p = (Program*)prog;
    const char* cxxEnv = std::getenv("CUDA_EMU_CXX");
    std::string cxx = cxxEnv && *cxxEnv ? cxxEnv : "clang++";
    std::string flags;
    std::string include;
    for (int i = 0; i < numOptions; i++) {
        std::string o = options[i];
        if (o.rfind("-I", 0) == 0) { flags += " " + shellQuote(o); include = o.substr(2); }
        else if (o.rfind("-D", 0) == 0) flags += " " + shellQuote(o);
        // --gpu-architecture, --std, -default-device: meaningless on the host
    }
    char dir[] = "/tmp/gpt2-cuda-emu-XXXXXX";
    if (!mkdtemp(dir)) { p->log = "mkdtemp failed"; return 6; }
    std::string base = std::string(dir) + "/unit";
    {
        std::ofstream f(base + ".cpp");
        f << rewrite(p->source);
    }
    std::string cmd = shellQuote(cxx) + " -std=c++17 -O1 -fPIC -shared -w -D__CUDA_ARCH__=750" + flags +
                      " -include " + shellQuote(include + "/gpt2_cuda_emu.h") + " " + shellQuote(base + ".cpp") +
                      " -o " + shellQuote(base + ".so") + " > " + shellQuote(base + ".log") + " 2>&1";
    int status = std::system(cmd.c_str());
    {
        std::ifstream log(base + ".log");
        std::stringstream ss;
        ss << log.rdbuf();
        p->log = ss.str();
    }
    int rc = 0;
    if (status != 0) {
        p->log = p->name + ": host compiler failed (" + cmd + "):\n" + p->log;
        rc = 6;
    } else {
        std::ifstream so(base + ".so", std::ios::binary);
        std::vector<char> bytes((std::istreambuf_iterator<char>(so)), std::istreambuf_iterator<char>());
        uint64_t size = bytes.size();
        static const char magic[8] = {'E', 'M', 'U', 'S', 'O', 0, 0, 0};
        p->image.assign(magic, magic + 8);
        p->image.insert(p->image.end(), (char*)&size, (char*)&size + 8);
        p->image.insert(p->image.end(), bytes.begin(), bytes.end());
        p->log.clear();   // warnings are not NVRTC's to report
    }
    std::remove((base + ".cpp").c_str());
    std::remove((base + ".so").c_str());
    std::remove((base + ".log").c_str());
    rmdir(dir);
    return rc;
}

int nvrtcGetProgramLogSize(void* prog, size_t* size) { *size = ((Program*)prog)->log.size() + 1; return 0; }
int nvrtcGetProgramLog(void* prog, char* log) {
    std::memcpy(log, ((Program*)prog)->log.c_str(), ((Program*)prog)->log.size() + 1);
    return 0;
}
int nvrtcGetCUBINSize(void* prog, size_t* size) { *size = ((Program*)prog)->image.size(); return 0; }
int nvrtcGetCUBIN(void* prog, char* out) {
    std::memcpy(out, ((Program*)prog)->image.data(), ((Program*)prog)->image.size());
    return 0;
}
int nvrtcGetPTXSize(void* prog, size_t* size) { return nvrtcGetCUBINSize(prog, size); }
int nvrtcGetPTX(void* prog, char* out) { return nvrtcGetCUBIN(prog, out); }

}  // extern "C"
