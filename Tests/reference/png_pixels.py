#!/usr/bin/env python3
"""Counts pixels in a region of a PNG (Python's standard library only: zlib + struct).

  png_pixels.py FILE.png X Y W H [RRGGBB ...]
prints JSON {"width", "height", "region": n, "non_white": n, "colors": {"RRGGBB": n}}, counting in
the rectangle (X, Y, W, H) the pixels that are not near-white and those within a small distance of
each colour (anti-aliased edges of a line are lighter, its centre is the colour).
Decodes 8-bit greyscale/RGB/RGBA, non-interlaced PNGs with all five row filters.
"""
import json
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 6: 4, 4: 2}[color]
    if depth != 8 or interlace != 0:
        raise SystemExit(f"{path}: unsupported PNG (depth {depth}, interlace {interlace})")
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    def rgb(x, y):
        px = rows[y][x * channels:(x + 1) * channels]
        return (px[0], px[0], px[0]) if channels <= 2 else tuple(px[:3])
    return width, height, rgb


def main():
    path, x0, y0, w, h = sys.argv[1], *map(int, sys.argv[2:6])
    targets = {c: tuple(int(c[i:i + 2], 16) for i in (0, 2, 4)) for c in sys.argv[6:]}
    width, height, rgb = decode(path)
    counts = {c: 0 for c in targets}
    region = non_white = 0
    for y in range(max(0, y0), min(height, y0 + h)):
        for x in range(max(0, x0), min(width, x0 + w)):
            p = rgb(x, y)
            region += 1
            if min(p) < 235:
                non_white += 1
            for c, t in targets.items():
                if sum((p[i] - t[i]) ** 2 for i in range(3)) <= 40 ** 2:
                    counts[c] += 1
    print(json.dumps({"width": width, "height": height, "region": region, "non_white": non_white, "colors": counts}))


if __name__ == "__main__":
    main()
