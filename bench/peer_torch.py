"""PyTorch peer for `npm run bench:engine`: runs the same workloads in torch eager and prints JSON lines.
Run by bench/engine.ts with /usr/bin/python3, OPENBLAS_CORETYPE and OMP_NUM_THREADS set in the environment."""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def timeit(fn, min_time=2.0, max_runs=20, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < 3 or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


class Attn(nn.Module):
    def __init__(self, dim, heads, ctx_dim=None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        b, l, d = x.shape
        h = self.heads
        q = self.to_q(x).view(b, l, h, d // h).transpose(1, 2)
        k = self.to_k(ctx).view(b, ctx.shape[1], h, d // h).transpose(1, 2)
        v = self.to_v(ctx).view(b, ctx.shape[1], h, d // h).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) * (d // h) ** -0.5, dim=-1)
        return self.to_out((a @ v).transpose(1, 2).reshape(b, l, d))


class Block(nn.Module):
    """BasicTransformerBlock: LN → self-attn, LN → cross-attn (optional), LN → GEGLU feed-forward."""

    def __init__(self, dim, heads, ctx_dim):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attn(dim, heads)
        self.cross = ctx_dim is not None
        if self.cross:
            self.norm2, self.attn2 = nn.LayerNorm(dim), Attn(dim, heads, ctx_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff_in = nn.Linear(dim, dim * 8)
        self.ff_out = nn.Linear(dim * 4, dim)

    def forward(self, x, ctx=None):
        x = x + self.attn1(self.norm1(x))
        if self.cross:
            x = x + self.attn2(self.norm2(x), ctx)
        h, gate = self.ff_in(self.norm3(x)).chunk(2, dim=-1)
        return x + self.ff_out(h * F.gelu(gate))


class VideoDownBlock(nn.Module):
    """ResNet block + spatial transformer (cross-attention) + temporal transformer over frames."""

    def __init__(self, c, heads, ctx_dim, temb_dim, frames):
        super().__init__()
        self.frames = frames
        self.n1, self.c1 = nn.GroupNorm(32, c), nn.Conv2d(c, c, 3, padding=1)
        self.temb = nn.Linear(temb_dim, c)
        self.n2, self.c2 = nn.GroupNorm(32, c), nn.Conv2d(c, c, 3, padding=1)
        self.sn, self.sin, self.sblock, self.sout = nn.GroupNorm(32, c), nn.Linear(c, c), Block(c, heads, ctx_dim), nn.Linear(c, c)
        self.tn, self.tin, self.tblock, self.tout = nn.GroupNorm(32, c), nn.Linear(c, c), Block(c, heads, None), nn.Linear(c, c)

    def forward(self, x, temb, ctx):
        n, c, hh, ww = x.shape
        h = self.c1(F.silu(self.n1(x))) + self.temb(F.silu(temb))[:, :, None, None]
        x = x + self.c2(F.silu(self.n2(h)))
        s = self.sn(x).permute(0, 2, 3, 1).reshape(n, hh * ww, c)
        s = self.sout(self.sblock(self.sin(s), ctx))
        x = x + s.reshape(n, hh, ww, c).permute(0, 3, 1, 2)
        b = n // self.frames
        t = self.tn(x.reshape(b, self.frames, c, hh, ww).permute(0, 2, 1, 3, 4).reshape(b, c, self.frames, hh * ww))
        t = t.permute(0, 3, 2, 1).reshape(b * hh * ww, self.frames, c)
        t = self.tout(self.tblock(self.tin(t)))
        t = t.reshape(b, hh, ww, self.frames, c).permute(0, 3, 4, 1, 2).reshape(n, c, hh, ww)
        return x + t


def workload(w):
    g = torch.Generator().manual_seed(0)
    kind = w["kind"]
    if kind == "matmul":
        n = w["n"]
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        return lambda: a @ b
    if kind == "conv":
        x = torch.randn(w["n"], w["c"], w["hw"], w["hw"], generator=g)
        wt = torch.randn(w["c"], w["c"], 3, 3, generator=g)
        return lambda: F.conv2d(x, wt, padding=1)
    if kind == "attention":
        q, k, v = (torch.randn(w["b"], w["l"], w["d"], generator=g) for _ in range(3))
        scale = 1 / math.sqrt(w["d"])
        return lambda: torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v
    if kind in ("video_block", "video_block_train"):
        torch.manual_seed(0)
        m = VideoDownBlock(w["c"], w["heads"], w["ctx_dim"], w["temb_dim"], w["frames"])
        n = w["batch"] * w["frames"]
        x = torch.randn(n, w["c"], w["hw"], w["hw"], generator=g)
        temb = torch.randn(n, w["temb_dim"], generator=g)
        ctx = torch.randn(n, w["ctx_len"], w["ctx_dim"], generator=g)
        if kind == "video_block":
            def fwd():
                with torch.no_grad():
                    return m(x, temb, ctx)
            return fwd
        r = torch.randn(n, w["c"], w["hw"], w["hw"], generator=g)
        def step():
            m.zero_grad(set_to_none=True)
            (m(x, temb, ctx) * r).sum().backward()
        return step
    raise ValueError(kind)


def main():
    """Line protocol: the first stdin line is the JSON list of workloads; then each line names a workload to
    time, and one JSON line with its median seconds is printed back (so the bench can interleave the peers)."""
    workloads = {w["name"]: w for w in json.loads(sys.stdin.readline())}
    fns = {}
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        name = json.loads(line)["name"]
        if name not in fns:
            fns[name] = workload(workloads[name])
        print(json.dumps({"name": name, "seconds": timeit(fns[name])}), flush=True)


if __name__ == "__main__":
    main()
