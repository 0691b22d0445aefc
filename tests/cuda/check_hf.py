#!/usr/bin/env python3
"""Model logits of our backends vs Hugging Face `transformers` on small random models.

Builds two randomly initialised checkpoints with transformers (no download):
  llama - LlamaForCausalLM, GQA 4/2, head_dim 64, Llama-3 RoPE scaling (original context 64, so
          the scaling matters for the 100-token prompt), untied LM head;
  qwen2 - Qwen2ForCausalLM, QKV biases, NEOX RoPE, rope_theta 1e6, tied embeddings;
with random norm weights and biases (transformers initialises them to 1 and 0), saved as
model.safetensors (F32) + a classic config.json + the tiny tokenizer of
tests/data/tokenizer/hf_llama3 (1204 tokens; the vocabulary is 1280). The reference is the
transformers forward pass in float64 on the CPU over 100 random token ids.

Ours: `sgl-bench logits`, which computes the same positions as a server would: tokens [0, 60) in
one pass, [60, 90) over the cached prefix, then one token per pass (decode). Compared per row by
||ours - ref|| / ||ref||, plus top-1 agreement, for each DEVICE/KV-DTYPE of --runs. Thresholds:
cuda (bf16 weights and activations, f32 accumulation) max row error 5e-2; cpu (f32 weights, f32
KV) 1e-3. Negative control: each row against the reference of the next position must be 10x the
threshold off. Measured (H100 and H200 alike): cuda/bf16 max 0.032 (llama) / 0.025 (qwen2),
cuda/f16 0.030 / 0.026, cpu 4.5e-6 / 3.0e-6. These random models have large attention scores,
where the bf16 rounding of weights, GEMM inputs and Q moves the softmax most; the f16 KV run
shows the KV format is not the main term.

f16 weights (--dtype float16): each model is also saved as an F16 checkpoint (its weights
rounded to float16, as a torch.float16 checkpoint holds them) and compared with the float64
forward pass of those rounded weights, by `--dtype float16` and `--dtype auto` (both keep the
f16 weights exact: auto follows an all-f16 checkpoint) and `--dtype bfloat16` (rounded again to
bf16) on cuda, threshold 5e-2 as above; beside them, for scale, transformers
itself in torch.float16 on the GPU (printed, not checked; skipped without CUDA in torch).

Usage: python3 tests/cuda/check_hf.py --bin build-cuda/bin/sgl-bench [--runs cuda/bf16,cpu/f32]
  (a run is DEVICE/KV-DTYPE[/WEIGHT-DTYPE]; --f16-runs for the F16 checkpoint, "" for none)
Exit status 1 if any check fails. Prints one JSON line per (model, device).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER_DIR = os.path.join(ROOT, "tests", "data", "tokenizer", "hf_llama3")
N_TOKENS, SPLIT, DECODE_FROM = 100, 60, 90
THRESHOLDS = {"cuda": 5e-2, "cpu": 1e-3}


def base_config():
    return dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, vocab_size=1280,
                max_position_embeddings=2048, rms_norm_eps=1e-6, hidden_act="silu",
                initializer_range=0.1, bos_token_id=0, eos_token_id=1, torch_dtype="float32")


def hf_kwargs(cfg):
    """The config for the transformers constructor: the classic keys (rope_theta, rope_scaling;
    what config.json holds and what older versions read) plus transformers 5's rope_parameters."""
    kw = {k: v for k, v in cfg.items() if k != "architectures"}
    rope = dict(cfg.get("rope_scaling") or {"rope_type": "default"})
    rope["rope_theta"] = cfg["rope_theta"]
    kw["rope_parameters"] = rope
    return kw


def rope_of(conf):
    return getattr(conf, "rope_parameters", None) or {
        "rope_theta": getattr(conf, "rope_theta", None),
        "rope_scaling": getattr(conf, "rope_scaling", None)}


def make_model(kind, out_dir, seed):
    torch.manual_seed(seed)
    cfg = base_config()
    if kind == "llama":
        cfg.update(architectures=["LlamaForCausalLM"], model_type="llama", rope_theta=500000.0,
                   attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 64})
        conf = transformers.LlamaConfig(**hf_kwargs(cfg))
        model = transformers.LlamaForCausalLM(conf)
    else:
        cfg.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2", rope_theta=1000000.0,
                   tie_word_embeddings=True, use_sliding_window=False)
        conf = transformers.Qwen2Config(**hf_kwargs(cfg))
        model = transformers.Qwen2ForCausalLM(conf)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(1.0, 0.2)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.5)
    model.eval()
    print(json.dumps({"model": kind, "transformers": transformers.__version__,
                      "rope": rope_of(model.config)}, default=str))
    os.makedirs(out_dir, exist_ok=True)
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()
          if k.startswith("model.") or k.startswith("lm_head.")}
    if cfg["tie_word_embeddings"]:
        sd.pop("lm_head.weight", None)
    save_file(sd, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER_DIR, name), out_dir)
    return model


def save_f16(model, src_dir, out_dir):
    """The model's weights rounded to float16, saved as an F16 checkpoint beside a copy of
    src_dir's config and tokenizer; the model keeps the rounded values."""
    os.makedirs(out_dir, exist_ok=True)
    model.half()
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()
          if k.startswith("model.") or k.startswith("lm_head.")}
    with open(os.path.join(src_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg["tie_word_embeddings"]:
        sd.pop("lm_head.weight", None)
    cfg["torch_dtype"] = "float16"
    save_file(sd, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src_dir, name), out_dir)


def errors(got, ref):
    err = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)
    # Negative control: the reference of the next position must be far off.
    shifted = np.linalg.norm(got[:-1] - ref[1:], axis=1) / np.linalg.norm(ref[1:], axis=1)
    return err, shifted


def check_runs(args, work, kind, d, ref, ids, runs, checkpoint):
    ok = True
    for run in [r for r in runs.split(",") if r]:
        parts = run.split("/")
        dev, kv = parts[0], parts[1]
        dtype = parts[2] if len(parts) > 2 else "auto"
        out = os.path.join(work, f"{kind}_{checkpoint}_{dev}_{kv}_{dtype}.f32")
        cmd = [args.bin, "logits", "-m", d, "--device", dev, "--ids", ",".join(map(str, ids)),
               "--split", str(SPLIT), "--decode-from", str(DECODE_FROM), "--out", out,
               "--kv-dtype", kv, "--dtype", dtype]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(json.dumps({"model": kind, "checkpoint": checkpoint, "device": dev, "kv": kv,
                              "dtype": dtype, "error": r.stderr.strip()}))
            ok = False
            continue
        got = np.fromfile(out, dtype=np.float32).reshape(N_TOKENS, -1).astype(np.float64)
        err, shifted = errors(got, ref)
        top1 = float(np.mean(got.argmax(1) == ref.argmax(1)))
        passed = bool(err.max() < THRESHOLDS[dev] and shifted.min() > 10 * THRESHOLDS[dev])
        ok = ok and passed
        print(json.dumps({"model": kind, "checkpoint": checkpoint, "device": dev, "kv": kv,
                          "dtype": dtype, "rows": N_TOKENS,
                          "max_row_err": float(err.max()), "mean_row_err": float(err.mean()),
                          "prefill_err": float(err[:SPLIT].max()),
                          "cached_prefix_err": float(err[SPLIT:DECODE_FROM].max()),
                          "decode_err": float(err[DECODE_FROM:].max()),
                          "top1_agreement": top1, "control_min_err": float(shifted.min()),
                          "threshold": THRESHOLDS[dev], "passed": passed}))
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="path to sgl-bench")
    ap.add_argument("--runs", default="cuda/bf16,cuda/f16,cpu/f32")
    ap.add_argument("--f16-runs", default="cuda/bf16/float16,cuda/bf16/auto,cuda/bf16/bfloat16",
                    help="runs on the F16 checkpoint")
    ap.add_argument("--keep", help="directory to keep the models in (default: a temp dir)")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="sgl_check_hf_")
    ok = True
    rng = np.random.default_rng(3)
    ids = [int(x) for x in rng.integers(2, 1200, size=N_TOKENS)]
    for seed, kind in enumerate(["llama", "qwen2"]):
        d = os.path.join(work, kind)
        model = make_model(kind, d, seed + 1)
        with torch.no_grad():
            ref = model.double()(torch.tensor([ids])).logits[0].numpy()
        ok = check_runs(args, work, kind, d, ref, ids, args.runs, "f32") and ok
        if not args.f16_runs:
            continue
        d16 = os.path.join(work, kind + "_f16")
        save_f16(model, d, d16)
        with torch.no_grad():
            ref16 = model.double()(torch.tensor([ids])).logits[0].numpy()
        ok = check_runs(args, work, kind, d16, ref16, ids, args.f16_runs, "f16") and ok
        if torch.cuda.is_available():
            # transformers in torch.float16 on the GPU (eager, no cache): for scale only.
            with torch.no_grad():
                got = model.half().cuda()(torch.tensor([ids]).cuda()).logits[0].double().cpu()
            err, _ = errors(got.numpy(), ref16)
            print(json.dumps({"model": kind, "checkpoint": "f16", "device": "torch-cuda",
                              "dtype": "float16", "max_row_err": float(err.max()),
                              "mean_row_err": float(err.mean()), "checked": False}))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
