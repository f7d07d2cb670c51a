"""PyTorch twin of `kernel-bench` (benches/src/bin/kernel-bench): the same tiny ViT
(patch 16, width 192, 4 blocks, 3 heads, MLP 768, tanh-GELU, mean-pooled, 10 classes; 55
tensors, 1.97 M params), one fwd + bwd + AdamW step at batch 8, 224 px, 2 threads, plus a
1024^2 f32 matmul. Prints `RESULT case median_ms min_ms peak_rss_mib grads vars loss` lines.
"""

import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, heads, mlp):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(c, eps=1e-6)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        self.ln2 = nn.LayerNorm(c, eps=1e-6)
        self.fc1 = nn.Linear(c, mlp)
        self.fc2 = nn.Linear(mlp, c)

    def forward(self, x, b, t):
        c = x.shape[-1]
        h, dh = self.heads, c // self.heads
        qkv = self.qkv(self.ln1(x)).reshape(b, t, 3, h, dh).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(a.transpose(1, 2).reshape(b * t, c))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class TinyVit(nn.Module):
    def __init__(self, image=224, patch=16, c=192, depth=4, heads=3, mlp=768, classes=10):
        super().__init__()
        self.image, self.p, self.c = image, patch, c
        self.patch = nn.Linear(3 * patch * patch, c)
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2, c) * 0.02)
        self.blocks = nn.ModuleList(Block(c, heads, mlp) for _ in range(depth))
        self.ln_f = nn.LayerNorm(c, eps=1e-6)
        self.head = nn.Linear(c, classes)

    def forward(self, images):
        b, p, c = images.shape[0], self.p, self.c
        g = self.image // p
        t = g * g
        x = images.reshape(b, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b * t, 3 * p * p)
        x = (self.patch(x).reshape(b, t, c) + self.pos).reshape(b * t, c)
        for blk in self.blocks:
            x = blk(x, b, t)
        x = self.ln_f(x).reshape(b, t, c).mean(1)
        return self.head(x)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(2)

    a = torch.randn(1024, 1024)
    bm = torch.randn(1024, 1024)
    times = []
    for i in range(args.steps * 2 + 3):
        t0 = time.perf_counter()
        a @ bm
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
    print(f"RESULT torch_matmul {statistics.median(times):.2f} {min(times):.2f} {peak_rss_mib():.0f} 0 0 0")

    # Only the GEMMs of one training step (same shapes and layouts as kernel-bench's gemm_only).
    n = 8 * 196
    lin = [(768, 192)] + [(192, 576), (192, 192), (192, 768), (768, 192)] * 4
    lin = [(torch.randn(n, i), torch.randn(o, i), torch.randn(n, o)) for i, o in lin]
    q, k, v = (torch.randn(8, 3, 196, 64) for _ in range(3))
    p = torch.randn(8, 3, 196, 196)
    times = []
    for i in range(args.steps + 2):
        t0 = time.perf_counter()
        for x, w, g in lin:
            x @ w.t()
            g @ w
            g.t() @ x
        for _ in range(4):
            q @ k.transpose(-1, -2)
            p @ v
            q @ v.transpose(-1, -2)
            p.transpose(-1, -2) @ q
            p @ k
            p.transpose(-1, -2) @ q
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1e3)
    print(f"RESULT torch_gemm_only {statistics.median(times):.2f} {min(times):.2f} {peak_rss_mib():.0f} 0 0 0")

    model = TinyVit()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.randn(8, 3, 224, 224)
    labels = torch.arange(8) % 10
    times, phases = [], [[], [], []]
    for i in range(args.steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        grads = sum(p.grad is not None for p in model.parameters())
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if i >= 2:
            times.append((t4 - t0) * 1e3)
            for ph, v in zip(phases, (t1 - t0, t2 - t1, t4 - t3)):
                ph.append(v * 1e3)
    n = len(list(model.parameters()))
    f, b, o = (statistics.median(p) for p in phases)
    print(f"PHASES torch_vit forward {f:.1f} ms, backward {b:.1f} ms, optimizer {o:.1f} ms (medians)")
    print(f"RESULT torch_vit {statistics.median(times):.2f} {min(times):.2f} {peak_rss_mib():.0f} {grads} {n} {loss.item():.4f}")


if __name__ == "__main__":
    main()
