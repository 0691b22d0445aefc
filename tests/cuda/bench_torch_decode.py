#!/usr/bin/env python3
"""A strong PyTorch peer for the CUDA decode figures: a Llama decoder written directly on PyTorch
ops (cuBLAS GEMMs for every projection, SDPA over a static KV cache, fused QKV and gate|up weights
as SGLang stores them), bf16, random weights of the config's shape, with each decode step
captured once into a CUDA graph and replayed, which removes the Python and launch overhead that
an eager transformers run carries (tests/cuda/bench_hf_decode.py measures that one). Timed as
`sgl-bench model` times ours: the batch's sequences hold --input tokens of context, then
greedy decode steps; median step time of CUDA-event-timed replays. Prints one JSON object.

    python3 tests/cuda/bench_torch_decode.py --config tests/data/configs/llama-3.1-8b.json
"""
import argparse
import json
import math
import statistics

import torch
import torch.nn.functional as F


def rope_inv_freq(cfg, head_dim):
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    rs = cfg.get("rope_scaling") or {}
    if rs.get("rope_type", rs.get("type")) == "llama3":
        factor = rs["factor"]
        lo, hi = rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        scaled = torch.where(wavelen > old / lo, inv / factor, inv)
        mid = (1 - smooth) * inv / factor + smooth * inv
        is_mid = (wavelen <= old / lo) & (wavelen >= old / hi)
        inv = torch.where(is_mid, mid, scaled)
    return inv


class Decoder:
    def __init__(self, cfg, batch, max_len, dev):
        g = torch.Generator(device=dev).manual_seed(0)
        self.E = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.KH = cfg.get("num_key_value_heads", self.H)
        self.D = cfg.get("head_dim", self.E // self.H)
        self.F = cfg["intermediate_size"]
        self.L = cfg["num_hidden_layers"]
        self.V = cfg["vocab_size"]
        self.eps = cfg.get("rms_norm_eps", 1e-5)
        bf = torch.bfloat16

        def w(rows, cols):
            return (torch.rand(rows, cols, generator=g, device=dev, dtype=torch.float32) * 2 - 1) \
                .mul_(1.0 / math.sqrt(cols)).to(bf)

        qkv = (self.H + 2 * self.KH) * self.D
        self.layers = []
        for _ in range(self.L):
            self.layers.append(dict(
                wqkv=w(qkv, self.E), wo=w(self.E, self.H * self.D), wgu=w(2 * self.F, self.E),
                wdown=w(self.E, self.F), n1=torch.ones(self.E, device=dev, dtype=bf),
                n2=torch.ones(self.E, device=dev, dtype=bf)))
        self.embed = w(self.V, self.E)
        self.head = w(self.V, self.E)
        self.norm = torch.ones(self.E, device=dev, dtype=bf)
        self.k = torch.zeros(self.L, batch, self.KH, max_len, self.D, device=dev, dtype=bf)
        self.v = torch.zeros_like(self.k)
        self.inv_freq = rope_inv_freq(cfg, self.D).to(dev)
        self.max_len = max_len
        # Static inputs of the graph.
        self.tok = torch.zeros(batch, dtype=torch.long, device=dev)
        self.pos = torch.zeros(batch, dtype=torch.long, device=dev)
        self.ar = torch.arange(max_len, device=dev)

    def rms(self, x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * w

    def rope(self, x, cos, sin):  # x [B, h, 1, D], neox halves as Llama's HF layout
        x1, x2 = x[..., : self.D // 2], x[..., self.D // 2:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    def step(self):
        B = self.tok.shape[0]
        x = self.embed[self.tok]  # [B, E]
        ang = self.pos.double()[:, None] * self.inv_freq[None, :]
        cos = ang.cos().to(torch.bfloat16)[:, None, None, :]
        sin = ang.sin().to(torch.bfloat16)[:, None, None, :]
        mask = (self.ar[None, :] <= self.pos[:, None])[:, None, None, :]  # [B, 1, 1, S]
        bidx = torch.arange(B, device=x.device)
        for i, l in enumerate(self.layers):
            h = self.rms(x, l["n1"])
            qkv = h @ l["wqkv"].t()
            q, k, v = qkv.split([self.H * self.D, self.KH * self.D, self.KH * self.D], -1)
            q = self.rope(q.view(B, self.H, 1, self.D), cos, sin)
            k = self.rope(k.view(B, self.KH, 1, self.D), cos, sin)
            self.k[i][bidx, :, self.pos] = k[:, :, 0]
            self.v[i][bidx, :, self.pos] = v.view(B, self.KH, self.D)
            o = F.scaled_dot_product_attention(q, self.k[i], self.v[i], attn_mask=mask,
                                               enable_gqa=True)
            x = x + o.reshape(B, self.H * self.D) @ l["wo"].t()
            h = self.rms(x, l["n2"])
            gu = h @ l["wgu"].t()
            x = x + (F.silu(gu[:, : self.F]) * gu[:, self.F:]) @ l["wdown"].t()
        logits = self.rms(x, self.norm) @ self.head.t()
        return logits.argmax(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--input", type=int, default=1024)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--batches", default="1,64")
    a = ap.parse_args()
    with open(a.config) as f:
        cfg = json.load(f)
    dev = torch.device("cuda")
    free, total = torch.cuda.mem_get_info()
    out = {"peer": "pytorch ops + cuBLAS + SDPA, CUDA graph per step", "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(), "input_len": a.input, "decode": []}
    for b in [int(x) for x in a.batches.split(",")]:
        m = Decoder(cfg, b, a.input + a.decode + 8, dev)
        # Context: random K/V (values do not change the timing), positions start at --input.
        m.k.normal_()
        m.v.normal_()
        m.tok.random_(100, m.V - 100)
        m.pos.fill_(a.input)
        with torch.no_grad():
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    m.step()
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                nxt = m.step()
            times = []
            for i in range(a.decode):
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                graph.replay()
                e1.record()
                e1.synchronize()
                times.append(e0.elapsed_time(e1))
                m.tok.copy_(nxt)
                m.pos.add_(1)
        med = statistics.median(times[4:])
        out["decode"].append({"batch": b, "median_step_ms": med, "tokens_per_s": b / med * 1e3})
        del graph, m
        torch.cuda.empty_cache()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
