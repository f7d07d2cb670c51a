"""NumPy twin of `hand3d-step` (benches/src/bin/hand3d-step.rs):
the per-clip Hand3D step — back-projection, nearest joint sampling, object positions (central
box median, hand mask, thickness prior), scale calibration (paper: s = median(j_z / P_z)),
Q&A answers in the paper's form and motion tokens — on the same deterministic 320x240,
100-frame synthetic clip. The arithmetic follows the Rust code operation by operation in
float32, so both print the same `CHECK` lines; then `RESULT hand3d_step_numpy median_ms min_ms
frames` can be compared with the Rust `RESULT` line.

    .venv/bin/python benches/hand3d_step.py [repeats]
"""

import sys
import time

import numpy as np

F32 = np.float32
W, H, N = 320, 240, 100
FACTOR = 1.7
FX = FY = F32(277.12813)
CX, CY = F32(160.0), F32(120.0)
CUBES = [("green cube", (-0.1, 0.15, 0.8), 0.04), ("red cube", (0.12, 0.2, 0.7), 0.03)]
GAMMA = F32(0.3)
CENTRAL = F32(0.5)
MASK_R = F32(0.015)
BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
         (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
         (18, 19), (19, 20), (5, 9), (9, 13), (13, 17)]
PALM = [0, 5, 9, 13, 17]


def fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def joints(f):
    t = F32(f) / F32(N - 1)
    w = [F32(0.15) - F32(0.2) * t, F32(0.1), F32(0.55) + F32(0.15) * t]
    j = np.empty((21, 3), dtype=F32)
    j[:] = w
    for finger in range(5):
        if finger == 0:
            x, y0 = F32(-0.035), F32(-0.015)
        else:
            x, y0 = (F32(finger) - F32(1.5)) * F32(0.02), F32(-0.07)
        for s in range(4):
            j[1 + finger * 4 + s] = [w[0] + x, (w[1] + y0) - F32(0.022) * F32(s),
                                     w[2] + F32(0.002) * F32(s)]
    return j


def workload():
    rows = (np.arange(H, dtype=np.float64) + 0.5 - float(CY)) / float(FY)
    with np.errstate(divide="ignore"):
        table = np.where(rows > 0, 0.3 / np.where(rows > 0, rows, 1.0), np.inf)
    base = np.minimum(table, 1.3)[:, None].repeat(W, axis=1)
    idx = np.arange(W * H, dtype=np.uint64)
    frames = []
    for f in range(N):
        depth = base.copy()

        def paint(u0, v0, u1, v1, z):
            c0, c1 = int(max(np.floor(u0), 0)), int(min(np.floor(u1), W - 1))
            r0, r1 = int(max(np.floor(v0), 0)), int(min(np.floor(v1), H - 1))
            sub = depth[r0:r1 + 1, c0:c1 + 1]
            np.minimum(sub, float(z), out=sub)

        boxes = []
        for name, c, hs in CUBES:
            c = [F32(v) for v in c]
            hs = F32(hs)
            z = c[2] - hs
            u0 = FX * (c[0] - hs) / z + CX
            u1 = FX * (c[0] + hs) / z + CX
            v0 = FY * (c[1] - hs) / z + CY
            v1 = FY * (c[1] + hs) / z + CY
            paint(u0, v0, u1, v1, z)
            boxes.append((name, np.array([u0, v0, u1, v1], dtype=F32)))
        js = joints(f)
        for p in js:
            u = np.floor(FX * p[0] / p[2] + CX)
            v = np.floor(FY * p[1] / p[2] + CY)
            paint(u - F32(3), v - F32(3), u + F32(3), v + F32(3), p[2])
        h = (idx * np.uint64(2654435761) + np.uint64(f * 40503)) % np.uint64(1 << 32)
        noise = h.astype(np.float64) / float(1 << 32) - 0.5
        est = (depth.reshape(-1) * FACTOR * (1.0 + 0.02 * noise)).astype(F32).reshape(H, W)
        frames.append((est, js, boxes))
    return frames


U = np.arange(W, dtype=F32) + F32(0.5)
V = np.arange(H, dtype=F32) + F32(0.5)


def backproject(z):
    pm = np.empty((H, W, 3), dtype=F32)
    pm[..., 0] = ((U - CX) / FX)[None, :] * z
    pm[..., 1] = ((V - CY) / FY)[:, None] * z
    pm[..., 2] = z
    bad = ~(np.isfinite(z) & (z > 0))
    pm[bad] = np.nan
    return pm


def project(p):
    return FX * p[..., 0] / p[..., 2] + CX, FY * p[..., 1] / p[..., 2] + CY


def median(v):
    v = np.sort(v[np.isfinite(v)])
    n = len(v)
    if n == 0:
        return None
    return v[n // 2] if n % 2 == 1 else F32(0.5) * (v[n // 2 - 1] + v[n // 2])


def observe(pm, js, boxes):
    u, v = project(js)
    inside = (js[:, 2] > 0) & (u >= 0) & (v >= 0) & (u < W) & (v < H)
    map_z = np.full(21, np.nan, dtype=F32)
    for k in np.nonzero(inside)[0]:
        p = pm[int(np.floor(v[k])), int(np.floor(u[k]))]
        if np.all(np.isfinite(p)) and p[2] > 0:
            map_z[k] = p[2]
    # Hand mask capsules.
    a = np.array([(u[i], v[i]) for i, _ in BONES], dtype=F32)
    b = np.array([(u[j], v[j]) for _, j in BONES], dtype=F32)
    zmin = np.array([min(js[i, 2], js[j, 2]) for i, j in BONES], dtype=F32)
    rad = max(FX, FY) * MASK_R / zmin
    objects = []
    for name, (x0, y0, x1, y1) in boxes:
        cx, cy = F32(0.5) * (x0 + x1), F32(0.5) * (y0 + y1)
        hw, hh = F32(0.5) * (x1 - x0) * CENTRAL, F32(0.5) * (y1 - y0) * CENTRAL
        c0 = int(max(np.ceil(cx - hw - F32(0.5)), 0))
        c1 = int(min(np.floor(cx + hw - F32(0.5)), W - 1))
        r0 = int(max(np.ceil(cy - hh - F32(0.5)), 0))
        r1 = int(min(np.floor(cy + hh - F32(0.5)), H - 1))
        reg = pm[r0:r1 + 1, c0:c1 + 1].reshape(-1, 3)
        pu = np.tile(np.arange(c0, c1 + 1, dtype=F32) + F32(0.5), r1 - r0 + 1)
        pv = np.repeat(np.arange(r0, r1 + 1, dtype=F32) + F32(0.5), c1 - c0 + 1)
        valid = np.all(np.isfinite(reg), axis=1) & (reg[:, 2] > 0)
        dx, dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
        len2 = dx * dx + dy * dy
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((pu[:, None] - a[None, :, 0]) * dx + (pv[:, None] - a[None, :, 1]) * dy) / len2
        t = np.where(len2 > 0, np.clip(t, F32(0), F32(1)), F32(0))
        px = a[None, :, 0] + t * dx - pu[:, None]
        py = a[None, :, 1] + t * dy - pv[:, None]
        masked = np.any(px * px + py * py <= rad * rad, axis=1)
        pts = reg[valid & ~masked]
        if len(pts) == 0:
            pts = reg[valid & masked]
        p = np.array([median(pts[:, i]) for i in range(3)], dtype=F32)
        he = F32(0.5) * min((x1 - x0) / FX, (y1 - y0) / FY) * p[2]
        n = np.sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2])
        objects.append(p + he * p / n)
    return map_z, objects


def palm(js):
    p = np.zeros(3, dtype=F32)
    for j in PALM:
        p = p + js[j] / F32(5)
    return p


def fmt(vec):
    n = np.sqrt(vec[0] * vec[0] + vec[1] * vec[1] + vec[2] * vec[2])
    words = []
    if n > 0:
        for i, (neg, pos) in enumerate([("left", "right"), ("up", "down"), ("backward", "forward")]):
            c = vec[i] / n
            if c > GAMMA:
                words.append(pos)
            elif c < -GAMMA:
                words.append(neg)
    return f"{' and '.join(words) or 'stationary'}, {float(n):.2f}m"


def encode(v, lo, hi):
    t = np.floor((float(v) - lo) / (hi - lo) * 1024.0)
    return int(min(max(t, 0.0), 1023))


def step(frames):
    obs = []
    for est, js, boxes in frames:
        obs.append((js,) + observe(backproject(est), js, boxes))
    ratios = np.concatenate([js[:, 2] / mz for js, mz, _ in obs])
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    s = median(ratios)
    answers = []
    for js, _, objs in obs:
        pa = palm(js)
        for p in objs:
            answers.append(fmt(p * s - pa))
    for i in range(len(obs) - 10):
        answers.append(fmt(palm(obs[i + 10][0]) - palm(obs[i][0])))
    toks = "".join(
        f"<mx_{encode(js[0, 0], -0.5, 0.5)}><my_{encode(js[0, 1], -0.5, 0.5)}><mz_{encode(js[0, 2], 0.0, 1.0)}>"
        for js, _, _ in obs)
    return s, answers, toks


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    frames = workload()
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        s, answers, toks = step(frames)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    print(f"RESULT hand3d_step_numpy {times[len(times) // 2]:.3f} {times[0]:.3f} {len(frames)}")
    print(f"CHECK scale {float(s):.6f} (true {1.0 / FACTOR:.6f})")
    print(f"CHECK answers {len(answers)} first {answers[0]!r}".replace("'", '"'))
    print(f"CHECK answers_fnv {fnv1a('|'.join(answers).encode()):016x}")
    print(f"CHECK tokens_fnv {fnv1a(toks.encode()):016x} head {toks[:24]}")


if __name__ == "__main__":
    main()
