// Hot elementwise loops in C: clang vectorises them for AVX-512/AVX2 with target_clones,
// which Swift cannot do portably (no function multiversioning in Swift).
#include "GPT2Kernels.h"
