// Portable vectorised C kernels (hot loops) called from Swift. See kernels.c.
#pragma once
#include <stddef.h>
