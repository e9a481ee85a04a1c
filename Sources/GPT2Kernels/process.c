// Process set-up for the command-line tool that Swift 6 cannot write directly (C's `stdout` is a
// global it treats as shared mutable state).
#include "GPT2Kernels.h"
#include <stdio.h>

void gpt2k_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }
