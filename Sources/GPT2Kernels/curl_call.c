// Trampolines for libcurl's variadic entry points (curl_easy_setopt, curl_easy_getinfo): the
// library is dlopen'ed by Sources/GPT2/Hub/Curl.swift, and a variadic callee must be called with a
// variadic prototype (on arm64 Darwin the arguments go on the stack, not in registers).
#include "GPT2Kernels.h"

typedef int (*VariadicCall)(void *, int, ...);

int gpt2k_curl_setopt_pointer(void *fn, void *handle, int option, const void *value) {
    return ((VariadicCall)fn)(handle, option, value);
}

int gpt2k_curl_setopt_long(void *fn, void *handle, int option, long value) {
    return ((VariadicCall)fn)(handle, option, value);
}

int gpt2k_curl_setopt_offset(void *fn, void *handle, int option, int64_t value) {
    return ((VariadicCall)fn)(handle, option, value);   // curl_off_t is 64-bit on every platform curl supports
}

int gpt2k_curl_getinfo_long(void *fn, void *handle, int info, long *value) {
    return ((VariadicCall)fn)(handle, info, value);
}

int gpt2k_curl_getinfo_string(void *fn, void *handle, int info, const char **value) {
    return ((VariadicCall)fn)(handle, info, value);
}
