#!/usr/bin/env python3
"""Forward throughput of lasgd against PyTorch on the same models, batch and
threads, in the same run. Exports torchvision models (random weights, eval
mode) to ONNX, times lasgd-bench-forward and PyTorch (torch.inference_mode,
set_num_threads), and appends a Markdown table to bench/results/.

usage: bench/forward_vs_pytorch.py [--build build] [--batch 32] [--threads 2] [--iters 10]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torchvision

MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
}


def time_pytorch(model, batch, iters, warmup):
    x = torch.randn(batch, 3, 224, 224)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            start = time.perf_counter()
            model(x)
            elapsed = (time.perf_counter() - start) * 1000
            if i >= warmup:
                times.append(elapsed)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "forward_throughput.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    binary = os.path.join(args.build, "bin", "lasgd-bench-forward")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = MODELS[name]().eval()
            path = os.path.join(tmp, f"{name}.onnx")
            torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, opset_version=17, dynamo=False,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            out = subprocess.run([binary, path, f"--batch={args.batch}", f"--threads={args.threads}",
                                  f"--iters={args.iters}", f"--warmup={args.warmup}"],
                                 check=True, capture_output=True, text=True, env=env)
            lasgd = json.loads(out.stdout.strip().splitlines()[-1])
            torch_ms = time_pytorch(model, args.batch, args.iters, args.warmup)
            ratio = torch_ms / lasgd["median_ms"]
            rows.append((name, lasgd["median_ms"], torch_ms, ratio))
            print(f"{name}: lasgd {lasgd['median_ms']:.1f} ms, PyTorch {torch_ms:.1f} ms, "
                  f"speed-up {ratio:.2f}x", flush=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    with open(args.out, "a") as f:
        f.write(f"\n### {stamp} — batch {args.batch}, {args.threads} threads, torch {torch.__version__}, {cpu}, "
                f"{os.cpu_count()} cores\n\n")
        f.write(f"`python3 bench/forward_vs_pytorch.py --batch {args.batch} --threads {args.threads} "
                f"--iters {args.iters}`\n\n")
        f.write("| model | lasgd ms/batch | PyTorch ms/batch | lasgd speed-up |\n|---|---|---|---|\n")
        for name, l, t, r in rows:
            f.write(f"| {name} | {l:.1f} | {t:.1f} | {r:.2f}x |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
