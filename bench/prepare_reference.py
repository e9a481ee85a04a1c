#!/usr/bin/env python3
"""The reference side of bench/prepare.sh: build-nanogpt's fineweb.py pipeline on Parquet input.

  prepare_reference.py make-parquet TEXT OUTDIR [FILES]   cut TEXT into documents (paragraphs joined
                                                          up to ~4 KB, about FineWeb-Edu's mean) and
                                                          write them with pyarrow (snappy) as FILES
                                                          Parquet files; prints the documents' UTF-8 bytes
  prepare_reference.py run INDIR OUTDIR SHARD_TOKENS      fineweb.py: pyarrow reads the "text" column,
                                                          a multiprocessing pool of os.cpu_count()
                                                          workers runs tokenize() (EOT + tiktoken's
                                                          encode_ordinary, uint16), shards are filled
                                                          and np.save'd as edufineweb_{val,train}_NNNNNN

fineweb.py: https://github.com/karpathy/build-nanogpt/blob/master/fineweb.py (its shard loop is kept
as is; the HF dataset iterator is replaced by pyarrow, and tiktoken is built offline from the
package's GPT-2 files).
"""
import glob
import multiprocessing as mp
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "reference"))
import tiktoken_reference  # noqa: E402

enc = None
eot = 50256


def make_parquet(text_path, out, files=4):
    text = open(text_path, encoding="utf-8").read()
    docs, current = [], []
    size = 0
    for paragraph in text.split("\n\n"):
        current.append(paragraph)
        size += len(paragraph) + 2
        if size >= 4000:
            docs.append("\n\n".join(current))
            current, size = [], 0
    if current:
        docs.append("\n\n".join(current))
    os.makedirs(out, exist_ok=True)
    per_file = (len(docs) + files - 1) // files
    for k in range(files):
        part = docs[k * per_file:(k + 1) * per_file]
        pq.write_table(pa.table({"text": part}), os.path.join(out, f"part_{k:05d}.parquet"),
                       compression="snappy", row_group_size=1000)
    print(sum(len(d.encode("utf-8")) for d in docs))


def init():
    global enc
    enc = tiktoken_reference.load()


def tokenize(doc):
    # tokenizes a single document and returns a numpy array of uint16 tokens (fineweb.py)
    tokens = [eot]  # the special <|endoftext|> token delimits all documents
    tokens.extend(enc.encode_ordinary(doc))
    tokens_np = np.array(tokens)
    assert (0 <= tokens_np).all() and (tokens_np < 2**16).all(), "token dictionary too large for uint16"
    tokens_np_uint16 = tokens_np.astype(np.uint16)
    return tokens_np_uint16


def write_datafile(filename, tokens_np):
    np.save(filename, tokens_np)


def documents(indir):
    for path in sorted(glob.glob(os.path.join(indir, "*.parquet"))):
        for batch in pq.ParquetFile(path).iter_batches(columns=["text"]):
            for text in batch.column(0).to_pylist():
                if text is not None:
                    yield text


def run(indir, out, shard_size):
    os.makedirs(out, exist_ok=True)
    nprocs = os.cpu_count()
    with mp.Pool(nprocs, initializer=init) as pool:
        shard_index = 0
        # preallocate buffer to hold current shard
        all_tokens_np = np.empty((shard_size,), dtype=np.uint16)
        token_count = 0
        for tokens in pool.imap(tokenize, documents(indir), chunksize=16):
            # is there enough space in the current shard for the new tokens?
            if token_count + len(tokens) < shard_size:
                # simply append tokens to current shard
                all_tokens_np[token_count:token_count + len(tokens)] = tokens
                token_count += len(tokens)
            else:
                # write the current shard and start a new one
                split = "val" if shard_index == 0 else "train"
                filename = os.path.join(out, f"edufineweb_{split}_{shard_index:06d}")
                # split the document into whatever fits in this shard; the remainder goes to next one
                remainder = shard_size - token_count
                all_tokens_np[token_count:token_count + remainder] = tokens[:remainder]
                write_datafile(filename, all_tokens_np)
                shard_index += 1
                # populate the next shard with the leftovers of the current doc
                all_tokens_np[0:len(tokens) - remainder] = tokens[remainder:]
                token_count = len(tokens) - remainder
        # write any remaining tokens as the last shard
        if token_count != 0:
            split = "val" if shard_index == 0 else "train"
            filename = os.path.join(out, f"edufineweb_{split}_{shard_index:06d}")
            write_datafile(filename, all_tokens_np[:token_count])


if __name__ == "__main__":
    if sys.argv[1] == "make-parquet":
        make_parquet(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 4)
    else:
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]))
