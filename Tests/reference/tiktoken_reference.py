#!/usr/bin/env python3
"""Reference GPT-2 token ids from tiktoken (offline), for the Swift tokenizer tests.

  tiktoken_reference.py fixtures OUT.json         # the committed fixture: hand-picked cases
  tiktoken_reference.py random N SEED OUT.json    # N random Unicode strings (CI, when tiktoken is installed)

tiktoken is built from the GPT-2 files shipped in the package (Sources/GPT2Resources), no network.
"""
import json
import os
import random
import sys

import tiktoken

HERE = os.path.dirname(os.path.abspath(__file__))
RES = os.path.join(HERE, "..", "..", "Sources", "GPT2Resources")

# GPT-2's pattern as in tiktoken_ext/openai_public.py (r50k_base / gpt2)
PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def load():
    order = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    to_byte = {chr(b): b for b in order}
    n = 0
    for b in range(256):
        if b not in order:
            order.append(b)
            to_byte[chr(256 + n)] = b
            n += 1
    lines = open(os.path.join(RES, "vocab.bpe"), encoding="utf-8").read().split("\n")[1:-1]
    ranks = {bytes([b]): i for i, b in enumerate(order)}
    for a, b in (l.split() for l in lines):
        ranks[bytes(to_byte[c] for c in a) + bytes(to_byte[c] for c in b)] = len(ranks)
    return tiktoken.Encoding(name="gpt2", explicit_n_vocab=50257, pat_str=PAT,
                             mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


CASES = [
    "Hello, I'm a language model,",
    "", " ", "  ", "\n", "\n\n\n", "a", " a", "  a", "\ta", "\n a", "a\n", "a  ", "a \n ",
    "trailing spaces   ", "trailing tabs\t\t", "mixed ws \t \n\r\n  end",
    "CRLF line one\r\nline two\r\n\r\nline four",
    "Contractions: it's don't we're they've I'm we'll he'd",
    "Upper: IT'S DON'T WE'RE THEY'VE I'M WE'LL HE'D 'S 'T",
    "Odd: ''s '' ' s 's's 'll've 're'd x'y",
    "Curly apostrophes: it\u2019s don\u2019t \u2018quoted\u2019 \u201cdouble\u201d",
    "Numbers: 1 12 123 1234 12345 3.14159 1,000,000 0x1F -42 1e10",
    "Digits of other scripts: \u0661\u0662\u0663 \u096a\u096b \u0e51\u0e52 \u2167 \u00bd \u00b2 \u2460",
    "Accents: caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe",
    "Combining: cafe\u0301 n\u0303 a\u0308\u0304 \u0915\u094d\u0937",
    "Greek: \u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "Cyrillic: \u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "Arabic: \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "Hebrew: \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "Hindi: \u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "Thai: \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01",
    "Chinese: \u4f60\u597d\uff0c\u4e16\u754c\u3002\u6211\u662f\u4e00\u4e2a\u8bed\u8a00\u6a21\u578b",
    "Japanese: \u3053\u3093\u306b\u3061\u306f\u4e16\u754c\u3001\u30ab\u30bf\u30ab\u30ca",
    "Korean: \uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
    "Emoji: \U0001F600 \U0001F44D\U0001F3FD \U0001F468\u200D\U0001F469\u200D\U0001F467 \U0001F1EB\U0001F1F7 \u2764\ufe0f",
    "ZWJ and ZWNJ: a\u200db a\u200cb \u200b zero width",
    "NBSP: a\u00a0b \u00a0 x\u2009y\u2003z\u3000w\u202fv\u205fu",
    "Unicode spaces run:\u2000\u2001\u2002\u2003 end\u2028line\u2029para\u0085nel",
    "Control chars: \x00\x01\x1b[31mred\x1b[0m \x7f \x1c\x1d\x1e\x1f",
    "Punctuation: !!! ??? ... --- ((())) [[]] {{}} <<>> @#$%^&*_+=|\\/~`",
    "Code: def f(x):\n    return x**2  # square\n\tif (a && b) { c++; }",
    "URL: https://example.com/path?query=1&b=2#frag mailto:a@b.c",
    "<|endoftext|>", "before<|endoftext|>after", "a <|endoftext|> b<|endoftext|>",
    "Math: \u2200x\u2208\u211d, x\u00b2 \u2265 0 \u221e \u2211 \u222b \U0001D400\U0001D401",
    "Private use \ue000 and tags \U000E0041 and supplementary \U00020000\U0002A6D6",
    "Letterlike: \u2160\u2161 \u2070\u2071 \u02b0 \u02c6 \u3005",
    "Mixed 123abc abc123 a1b2c3 __init__ x_y-z",
    "Long word: " + "a" * 300 + " " + "ab" * 150 + " " + "\U0001F600" * 50,
    "Repeated spaces before words:     four and\t\t\ttabs and\n\n\nnewlines",
    "Ends with newline\n", "Ends with two newlines\n\n", "Ends with space and newline \n",
]

# Invalid UTF-8 decode cases: ids whose bytes are not valid UTF-8 on their own.
DECODE_CASES = [[49426], [29690], [447], [447, 247], [9202, 2], [164, 98, 114], [31479], [50256], [447, 447, 198]]


def fixtures(out):
    enc = load()
    cases = [{"text": t, "ids": enc.encode_ordinary(t),
              "ids_special": enc.encode(t, allowed_special="all")} for t in CASES]
    byte_cases = [b"\xe2\x82", b"\xf0\x9f\x98a", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff\xfe", b"a\x80b",
                  b"\xf4\x90\x80\x80", b"\xe2\x82\xac\xe2", b"\xf0\x9f\x98\x80\x80"]
    dcases = DECODE_CASES + [[enc.encode_single_token(bytes([b])) for b in bs] for bs in byte_cases]
    dec = [{"ids": ids, "text": enc.decode(ids, errors="replace")} for ids in dcases]
    json.dump({"encode": cases, "decode": dec}, open(out, "w"), ensure_ascii=True, indent=0)


RANGES = [  # assigned in every Unicode version since 10 (so tiktoken's and Swift's tables agree)
    (0x20, 0x7E), (0x09, 0x0D), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
    (0x5D0, 0x5EA), (0x620, 0x64A), (0x660, 0x669), (0x900, 0x97F), (0xE01, 0xE5B), (0x1680, 0x1680),
    (0x2000, 0x206F), (0x2070, 0x209C), (0x20A0, 0x20BF), (0x2100, 0x218B), (0x2460, 0x24FF),
    (0x3000, 0x303F), (0x3041, 0x3096), (0x30A1, 0x30FA), (0x4E00, 0x4FFF), (0xAC00, 0xAFFF),
    (0xFF01, 0xFF5E), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F900, 0x1F9FF), (0x1D400, 0x1D6A5),
]
WORDS = ["the", "The", " ", "  ", "\n", "\r\n", "\t", "'s", "'S", "'t", "'ll", "'re", "'ve", "'d", "'m",
         "\u2019s", "123", "4.5", "<|endoftext|>", "\u00a0", "\u3000", "hello", "WORLD", "caf\u00e9", "\u200d"]


def random_strings(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 40)):
            if rng.random() < 0.4:
                parts.append(rng.choice(WORDS))
            else:
                lo, hi = rng.choice(RANGES)
                parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6))))
        out.append("".join(parts))
    return out


def random_cases(n, seed, out):
    enc = load()
    texts = random_strings(n, seed)
    json.dump({"encode": [{"text": t, "ids": enc.encode_ordinary(t)} for t in texts]},
              open(out, "w"), ensure_ascii=True)


if __name__ == "__main__":
    if sys.argv[1] == "fixtures":
        fixtures(sys.argv[2])
    elif sys.argv[1] == "random":
        random_cases(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)
