#!/usr/bin/env python3
"""Pre-tokenizer pieces and per-piece BPE ids from tiktoken (offline), for `gpt inspect tokens`.

  token_pieces_reference.py < TEXTS.json
reads a JSON list of strings and prints, for each, a list of [piece, ids]: the pieces are the
matches of GPT-2's pattern (the `regex` module, as tiktoken's pattern is written), the ids
tiktoken's byte-pair encoding of that piece alone (Encoding._encode_single_piece).
"""
import json
import os
import sys

import regex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiktoken_reference import PAT, load  # noqa: E402

enc = load()
out = []
for text in json.load(sys.stdin):
    out.append([[piece, enc._encode_single_piece(piece.encode("utf-8"))] for piece in regex.findall(PAT, text)])
print(json.dumps(out))
