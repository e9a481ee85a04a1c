#!/usr/bin/env python3
"""Parquet fixtures for the Swift Parquet reader and `gpt prepare`, written by pyarrow, with the
expected documents (pyarrow's reading) and GPT-2 token ids (tiktoken, offline).

  parquet_reference.py matrix OUT     every writer variant (codec x dictionary x page version x nulls x
                                      row-group size x column layout), the dictionary->PLAIN fallback,
                                      many pages per chunk, a multi-MB string; OUT/files/*.parquet,
                                      OUT/unsupported/*.parquet (LZ4_RAW, BROTLI), OUT/manifest.json,
                                      OUT/expected.u16 (EOT + encode_ordinary(text) for each non-null
                                      row, files in path order: what `gpt prepare OUT/files` writes)
  parquet_reference.py fixtures OUT   the small committed fixtures (Tests/Fixtures/parquet) and their
                                      expected token ids (expected.json)

Token ids come from tiktoken_reference.load() (GPT-2 files of the package, no network).
"""
import json
import os
import random
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tiktoken_reference  # noqa: E402

EOT = 50256
SHAKESPEARE = open(os.path.join(HERE, "..", "..", "Sources", "GPT2Resources", "shakespeare.txt"), encoding="utf-8").read()


def documents(rng, n, nulls):
    """n texts (None for null rows when `nulls`): Shakespeare slices, tricky Unicode and whitespace,
    the literal <|endoftext|>, empty strings and repeats (so dictionaries have shared entries)."""
    docs = []
    for i in range(n):
        if nulls and i % 4 == 1:
            docs.append(None)
            continue
        kind = i % 9
        if kind == 0:
            doc = ""
        elif kind in (1, 5):
            doc = rng.choice(tiktoken_reference.CASES)
        elif kind == 2 and len(docs) > 3:
            doc = next((d for d in docs[-3:] if d is not None), "repeat")
        else:
            start = rng.randrange(len(SHAKESPEARE) - 2000)
            doc = SHAKESPEARE[start:start + rng.randrange(1, 600)]
        docs.append(doc)
    return docs


def table(docs, layout, nullable):
    """The text column alone, FineWeb-Edu's layout (text first, then id, dump, url, ..., int_score),
    or other columns before and after it (including a list column)."""
    n = len(docs)
    text = pa.array(docs, type=pa.string())
    field = pa.field("text", pa.string(), nullable=nullable)
    if layout == "alone":
        return pa.table([text], schema=pa.schema([field]))
    if layout == "fineweb":
        cols = [text,
                pa.array([f"<urn:uuid:{i:08x}>" for i in range(n)]),
                pa.array(["CC-MAIN-2024-10"] * n),
                pa.array([f"https://example.org/{i}" for i in range(n)]),
                pa.array([f"s3://bucket/{i % 3}.warc.gz" for i in range(n)]),
                pa.array(["en"] * n),
                pa.array([0.9 + i / (10 * n) for i in range(n)], type=pa.float64()),
                pa.array([len(d or "") // 4 for d in docs], type=pa.int64()),
                pa.array([2.5 + (i % 7) / 3 for i in range(n)], type=pa.float64()),
                pa.array([2 + i % 3 for i in range(n)], type=pa.int64())]
        names = ["text", "id", "dump", "url", "file_path", "language", "language_score", "token_count", "score", "int_score"]
        return pa.table(cols, schema=pa.schema([field] + [pa.field(x, c.type) for x, c in zip(names[1:], cols[1:])]))
    # "around": other types before and after, including a repeated (list) column
    cols = [pa.array([i * 7 for i in range(n)], type=pa.int64()),
            pa.array([[f"t{i}", "x"][: i % 3] for i in range(n)], type=pa.list_(pa.string())),
            pa.array([f"id-{i}" for i in range(n)]),
            text,
            pa.array([i % 2 == 0 for i in range(n)]),
            pa.array([float(i) / 3 for i in range(n)], type=pa.float32())]
    names = ["row", "tags", "id", "text", "flag", "score"]
    fields = [pa.field(x, c.type) for x, c in zip(names, cols)]
    fields[3] = field
    return pa.table(cols, schema=pa.schema(fields))


def write(path, t, **options):
    pq.write_table(t, path, **options)
    back = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    assert back == t.column("text").to_pylist(), path
    return back


def encodings(path):
    """The encodings of the text column's first chunk, and whether it has a dictionary page."""
    md = pq.ParquetFile(path).metadata
    names = [md.schema.column(i).path for i in range(md.num_columns)]
    c = md.row_group(0).column(names.index("text"))
    return set(c.encodings), c.has_dictionary_page


def tokens(enc, docs):
    out = []
    for d in docs:
        if d is not None:
            out.append(EOT)
            out.extend(enc.encode_ordinary(d))
    return out


def matrix(out):
    rng = random.Random(20240601)
    files = os.path.join(out, "files")
    unsupported = os.path.join(out, "unsupported")
    os.makedirs(files, exist_ok=True)
    os.makedirs(unsupported, exist_ok=True)
    entries = []

    def add(name, docs, layout="alone", **options):
        nullable = any(d is None for d in docs) or layout != "alone"
        path = os.path.join(files, name + ".parquet")
        write(path, table(docs, layout, nullable), **options)
        entries.append({"file": name + ".parquet", "values": docs, "nulls": sum(d is None for d in docs)})
        return path

    # Every combination: codec x dictionary x page version x nulls x row-group size; the column
    # layout (alone / FineWeb-Edu / other columns around it) rotates through them.
    layouts = ["alone", "fineweb", "around"]
    k = 0
    for codec in ["none", "snappy", "gzip", "zstd"]:
        for dictionary in [True, False]:
            for version in ["1.0", "2.0"]:
                for nulls in [False, True]:
                    for rows_per_group in [3, None]:
                        docs = documents(rng, 24, nulls)
                        layout = layouts[k % 3]
                        k += 1
                        name = f"m{k:02d}_{codec}_{'dict' if dictionary else 'plain'}_v{version[0]}_{'nulls' if nulls else 'nonull'}_{'rg3' if rows_per_group else 'rg1'}_{layout}"
                        add(name, docs, layout, compression=codec, use_dictionary=dictionary,
                            data_page_version=version, row_group_size=rows_per_group)

    # Dictionary -> PLAIN fallback partway through a chunk (a small dictionary page limit), v1 and v2.
    for version in ["1.0", "2.0"]:
        docs = documents(rng, 300, nulls=True)
        docs = [None if d is None else f"{i}: {d}" for i, d in enumerate(docs)]
        path = add(f"fallback_v{version[0]}", docs, "fineweb", compression="snappy", use_dictionary=True,
                   dictionary_pagesize_limit=2048, data_page_size=1024, write_batch_size=8, data_page_version=version)
        used, has_dictionary = encodings(path)
        assert has_dictionary and "PLAIN" in used and ({"PLAIN_DICTIONARY", "RLE_DICTIONARY"} & used), (path, used)

    # Many pages per chunk.
    add("manypages", documents(rng, 200, nulls=True), "around", compression="zstd", use_dictionary=False,
        data_page_size=256, write_batch_size=4)

    # A multi-MB string between short ones (dictionary on: the writer falls back to PLAIN for it).
    long_doc = (SHAKESPEARE * 3)[: 3 * 1024 * 1024]
    add("long", ["short one", long_doc, None, "short two"], compression="snappy")

    # DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY (parquet-mr's v2 fallback for strings), v1 and v2:
    # sorted documents so values share prefixes; several blocks per page, and many pages (the
    # front coding restarts on each page); the multi-MB string.
    for encoding, short in [("DELTA_LENGTH_BYTE_ARRAY", "dlba"), ("DELTA_BYTE_ARRAY", "dba")]:
        for version in ["1.0", "2.0"]:
            texts = sorted(d for d in documents(rng, 400, nulls=False))
            docs = [None if i % 5 == 3 else d for i, d in enumerate(texts)]
            for suffix, layout, options in [("snappy", "fineweb", dict(compression="snappy")),
                                            ("pages", "around", dict(compression="none", data_page_size=512, write_batch_size=8))]:
                path = add(f"delta_{short}_v{version[0]}_{suffix}", docs, layout, use_dictionary=False,
                           column_encoding={"text": encoding}, data_page_version=version, **options)
                assert encoding in encodings(path)[0], path
    add("delta_long", ["short one", long_doc, None, long_doc[:1000] + "x", "short two"], compression="zstd",
        use_dictionary=False, column_encoding={"text": "DELTA_BYTE_ARRAY"})

    # Codecs the reader refuses.
    for codec in ["lz4", "brotli"]:
        write(os.path.join(unsupported, codec + ".parquet"), table(documents(rng, 5, False), "fineweb", True), compression=codec)

    entries.sort(key=lambda e: e["file"].encode())
    enc = tiktoken_reference.load()
    all_tokens = []
    for e in entries:
        t = tokens(enc, e["values"])
        e["tokens"] = len(t)
        all_tokens.extend(t)
    np.array(all_tokens, dtype="<u2").tofile(os.path.join(out, "expected.u16"))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"files": entries}, f)


def fixtures(out):
    """Small files committed under Tests/Fixtures/parquet, so the reader is tested without Python."""
    rng = random.Random(7)
    os.makedirs(out, exist_ok=True)
    spec = [
        ("snappy_dict_v1_nulls", dict(compression="snappy", use_dictionary=True, data_page_version="1.0", row_group_size=4), True, "fineweb"),
        ("gzip_plain_v2_required", dict(compression="gzip", use_dictionary=False, data_page_version="2.0"), False, "alone"),
        ("zstd_dict_v2_nulls_around", dict(compression="zstd", use_dictionary=True, data_page_version="2.0", row_group_size=5), True, "around"),
        ("none_fallback_v1", dict(compression="none", use_dictionary=True, dictionary_pagesize_limit=256,
                                  data_page_size=128, write_batch_size=4, data_page_version="1.0"), True, "alone"),
        ("none_delta_length_v1", dict(compression="none", use_dictionary=False, column_encoding={"text": "DELTA_LENGTH_BYTE_ARRAY"},
                                      data_page_version="1.0"), True, "alone"),
        ("none_delta_byte_array_v2", dict(compression="none", use_dictionary=False, column_encoding={"text": "DELTA_BYTE_ARRAY"},
                                          data_page_version="2.0", data_page_size=256, write_batch_size=4), True, "fineweb"),
    ]
    enc = tiktoken_reference.load()
    expected = {}
    for name, options, nulls, layout in spec:
        docs = [None if d is None else d[:120] for d in documents(rng, 12, nulls)]
        path = os.path.join(out, name + ".parquet")
        write(path, table(docs, layout, nulls or layout != "alone"), **options)
        expected[name + ".parquet"] = {"values": docs, "nulls": sum(d is None for d in docs), "tokens": tokens(enc, docs)}
    used, has_dictionary = encodings(os.path.join(out, "none_fallback_v1.parquet"))
    assert has_dictionary and "PLAIN" in used, used
    write(os.path.join(out, "brotli.parquet"), table(["a brotli page"], "alone", False), compression="brotli")
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=True)
        f.write("\n")


if __name__ == "__main__":
    {"matrix": matrix, "fixtures": fixtures}[sys.argv[1]](sys.argv[2])
