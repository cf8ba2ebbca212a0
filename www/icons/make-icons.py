#!/usr/bin/env python3
"""Draws the demo's app icons as PNG files with the standard library only (zlib + struct).

The icons are committed; run this again only to change the artwork:
    python3 www/icons/make-icons.py

Artwork: a white check mark inside two circling sync arrows, on the TodoMVC red. Shapes are signed
distance functions, so one sample per pixel gives anti-aliased edges (coverage = 0.5 - distance).
"any" icons are a rounded square on transparency; "maskable" icons fill the whole square and keep the
artwork inside the central safe zone (a circle of 40% radius), as the maskable icon spec asks.
"""
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

TOP = (0xCC, 0x4A, 0x50)     # gradient top
BOTTOM = (0xA3, 0x32, 0x38)  # gradient bottom (theme colour #b83f45 sits between)
FG = (0xFF, 0xFF, 0xFF)


def png(path, width, height, rgba_rows):
    """Writes 8-bit RGBA rows (bytes) as a PNG."""
    raw = b"".join(b"\x00" + row for row in rgba_rows)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", header))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def sd_round_box(px, py, half, radius):
    qx = abs(px) - half + radius
    qy = abs(py) - half + radius
    outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
    return outside + min(max(qx, qy), 0.0) - radius


def sd_segment(px, py, ax, ay, bx, by):
    pax, pay = px - ax, py - ay
    bax, bay = bx - ax, by - ay
    h = max(0.0, min(1.0, (pax * bax + pay * bay) / (bax * bax + bay * bay)))
    return math.hypot(pax - bax * h, pay - bay * h)


def sd_triangle(px, py, a, b, c):
    """Signed distance to a triangle (negative inside), after Inigo Quilez."""
    (x0, y0), (x1, y1), (x2, y2) = a, b, c
    e0x, e0y = x1 - x0, y1 - y0
    e1x, e1y = x2 - x1, y2 - y1
    e2x, e2y = x0 - x2, y0 - y2
    v0x, v0y = px - x0, py - y0
    v1x, v1y = px - x1, py - y1
    v2x, v2y = px - x2, py - y2

    def proj(vx, vy, ex, ey):
        h = max(0.0, min(1.0, (vx * ex + vy * ey) / (ex * ex + ey * ey)))
        return vx - ex * h, vy - ey * h

    q0 = proj(v0x, v0y, e0x, e0y)
    q1 = proj(v1x, v1y, e1x, e1y)
    q2 = proj(v2x, v2y, e2x, e2y)
    s = 1.0 if e0x * e2y - e0y * e2x > 0 else -1.0
    d = min(
        (q0[0] ** 2 + q0[1] ** 2, s * (v0x * e0y - v0y * e0x)),
        (q1[0] ** 2 + q1[1] ** 2, s * (v1x * e1y - v1y * e1x)),
        (q2[0] ** 2 + q2[1] ** 2, s * (v2x * e2y - v2y * e2x)),
        key=lambda t: t[0],
    )
    inside = min(
        s * (v0x * e0y - v0y * e0x), s * (v1x * e1y - v1y * e1x), s * (v2x * e2y - v2y * e2x)
    )
    return -math.sqrt(d[0]) if inside > 0 else math.sqrt(d[0])


def artwork_distance(x, y):
    """Distance (in units of the artwork box, -1..1) to the white glyph."""
    # Check mark: two thick strokes with round caps.
    w = 0.085
    check = min(
        sd_segment(x, y, -0.34, 0.02, -0.09, 0.27),
        sd_segment(x, y, -0.09, 0.27, 0.36, -0.22),
    ) - w
    # Two sync arcs on a ring, each with an arrow head at its leading end (clockwise).
    r, rw = 0.74, 0.055
    ang = math.atan2(y, x)  # y grows downwards, so increasing angle is clockwise on screen
    ring = abs(math.hypot(x, y) - r) - rw
    arcs = 1e9
    heads = 1e9
    for start in (math.radians(-160), math.radians(20)):
        span = math.radians(125)
        rel = (ang - start) % (2 * math.pi)
        if rel <= span:
            arcs = min(arcs, ring)
        else:
            # round caps at both ends of the arc
            for a in (start, start + span):
                arcs = min(arcs, math.hypot(x - r * math.cos(a), y - r * math.sin(a)) - rw)
        # arrow head at the end of the arc, pointing along the clockwise tangent
        a = start + span
        cx, cy = r * math.cos(a), r * math.sin(a)
        tx, ty = -math.sin(a), math.cos(a)   # clockwise tangent
        nx, ny = math.cos(a), math.sin(a)    # outward normal
        size = 0.19
        tip = (cx + tx * size * 1.05, cy + ty * size * 1.05)
        left = (cx + nx * size, cy + ny * size)
        right = (cx - nx * size, cy - ny * size)
        heads = min(heads, sd_triangle(x, y, tip, left, right))
    return min(check, arcs, heads)


def render(size, maskable):
    rows = []
    half = size / 2.0
    # The artwork spans this fraction of the icon's half-size.
    art_scale = 0.56 if maskable else 0.66
    for j in range(size):
        row = bytearray()
        py = j + 0.5 - half
        t = j / max(1, size - 1)
        bg = tuple(round(TOP[k] + (BOTTOM[k] - TOP[k]) * t) for k in range(3))
        for i in range(size):
            px = i + 0.5 - half
            if maskable:
                bg_cov = 1.0
            else:
                d = sd_round_box(px, py, half * 0.92, half * 0.92 * 0.36)
                bg_cov = max(0.0, min(1.0, 0.5 - d))
            if bg_cov <= 0.0:
                row += b"\x00\x00\x00\x00"
                continue
            unit = half * art_scale
            d_art = artwork_distance(px / unit, py / unit) * unit
            fg_cov = max(0.0, min(1.0, 0.5 - d_art))
            rgb = [bg[k] + (FG[k] - bg[k]) * fg_cov for k in range(3)]
            row += bytes((round(rgb[0]), round(rgb[1]), round(rgb[2]), round(255 * bg_cov)))
        rows.append(bytes(row))
    return rows


def main():
    outputs = [
        ("icon-192.png", 192, False),
        ("icon-512.png", 512, False),
        ("maskable-192.png", 192, True),
        ("maskable-512.png", 512, True),
        ("apple-touch-icon.png", 180, True),
        ("favicon-32.png", 32, False),
    ]
    for name, size, maskable in outputs:
        png(os.path.join(HERE, name), size, size, render(size, maskable))
        print("wrote", name)


if __name__ == "__main__":
    main()
