// Files embedded into the binary at build time (see resources.c).
#pragma once
#include <stddef.h>

const unsigned char *gpt2_resource_encoder_json(size_t *count);
const unsigned char *gpt2_resource_vocab_bpe(size_t *count);
const unsigned char *gpt2_resource_shakespeare(size_t *count);
