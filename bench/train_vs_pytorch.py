#!/usr/bin/env python3
"""Training throughput and peak memory of lasgd against PyTorch on the same
models, batch, threads and optimizer.

Models: the Fashion-MNIST CNN of zoo/fashion-mnist (batch 128, 1x28x28; the
PyTorch model is built by make_model.py with the same seed, so it holds the
same weights as model.onnx), ResNet-18 and MobileNetV2 from torchvision
(batch 32, random weights, exported in training mode at opset 17).

Each measurement runs in its own process, so peak RSS (VmHWM; ru_maxrss would
carry this script's own peak across exec) belongs to one framework: lasgd-bench-train for lasgd, this script with
--worker for PyTorch. The two frameworks alternate (the one that goes first
swaps every round) and the median over rounds is reported. Both sides run
SGD with momentum 0.9, weight decay 5e-4, lr 0.01 and cross-entropy on one
fixed random batch, so data loading costs neither side anything; PyTorch
runs in its default memory format (contiguous NCHW, not channels-last).

usage: bench/train_vs_pytorch.py [--build build] [--threads 2] [--rounds 3]
           [--iters 5] [--warmup 2] [--size 224] [--models cnn,resnet18,mobilenet_v2]
           [--frameworks lasgd,pytorch]

--frameworks lasgd measures lasgd alone (e.g. peak memory after a change on
our side; PyTorch's numbers do not move): the PyTorch columns then read "-".
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CNN_ONNX = os.path.join(ROOT, "zoo", "fashion-mnist", "model.onnx")
BATCH = {"cnn": 128, "resnet18": 32, "mobilenet_v2": 32}
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


def build_model(name):
    """The PyTorch model, seeded so that every process builds the same one."""
    import torch
    torch.manual_seed(0)
    if name == "cnn":
        spec = importlib.util.spec_from_file_location(
            "make_model", os.path.join(ROOT, "zoo", "fashion-mnist", "make_model.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.FashionCnn()
    import torchvision
    return getattr(torchvision.models, name)(weights=None)


def sample_shape(name, size):
    return (1, 28, 28) if name == "cnn" else (3, size, size)


def peak_rss_bytes():
    """VmHWM of this process. Not resource.getrusage's ru_maxrss: Linux carries
    that across execve, so a worker started by a parent that imported torch
    would report the parent's peak where its own is lower."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pytorch_worker(args):
    """One PyTorch measurement in this process; prints a JSON line."""
    import torch
    rss_after_import = current_rss_bytes()
    torch.set_num_threads(args.threads)
    model = build_model(args.worker).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM,
                          weight_decay=WEIGHT_DECAY)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = BATCH[args.worker]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *sample_shape(args.worker, args.size), generator=gen)
    with torch.no_grad():
        classes = model(x[:2]).shape[1]
    y = torch.randint(0, classes, (batch,), generator=gen)
    times = []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        elapsed = (time.perf_counter() - start) * 1000
        if i >= args.warmup:
            times.append(elapsed)
    median = statistics.median(times)
    print(json.dumps({
        "framework": "pytorch", "model": args.worker, "batch": batch, "threads": args.threads,
        "median_ms": median, "samples_per_s": 1000.0 * batch / median,
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_after_import_bytes": rss_after_import, "last_loss": loss.item()}))
    return 0


def export(name, size, path):
    import warnings
    import torch
    warnings.filterwarnings("ignore")
    model = build_model(name).train()
    torch.onnx.export(model, torch.randn(2, *sample_shape(name, size)), path, opset_version=17,
                      dynamo=False, training=torch.onnx.TrainingMode.TRAINING,
                      do_constant_folding=False, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def run_json(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--binary", help="lasgd-bench-train to run (default: BUILD/bin/...)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3, help="timed steps (ResNet, MobileNet)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up steps (ResNet, MobileNet)")
    ap.add_argument("--cnn-iters", type=int, default=30, help="timed steps (CNN)")
    ap.add_argument("--cnn-warmup", type=int, default=3, help="warm-up steps (CNN)")
    ap.add_argument("--size", type=int, default=224, help="ResNet/MobileNet input side")
    ap.add_argument("--models", default="cnn,resnet18,mobilenet_v2")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "train_throughput.md"))
    ap.add_argument("--note", default="", help="a line written under the table")
    ap.add_argument("--frameworks", default="lasgd,pytorch",
                    help="which to run: lasgd,pytorch (default), lasgd or pytorch")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return pytorch_worker(args)

    frameworks = [fw for fw in args.frameworks.split(",") if fw]
    if not frameworks or any(fw not in ("lasgd", "pytorch") for fw in frameworks):
        ap.error(f"--frameworks takes lasgd and/or pytorch, got '{args.frameworks}'")
    import torch
    binary = args.binary or os.path.join(args.build, "bin", "lasgd-bench-train")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = CNN_ONNX if name == "cnn" else os.path.join(tmp, f"{name}.onnx")
            if name != "cnn":
                export(name, args.size, path)
            batch = BATCH[name]
            iters, warmup = ((args.cnn_iters, args.cnn_warmup) if name == "cnn" else
                             (args.iters, args.warmup))
            common = [f"--threads={args.threads}", f"--iters={iters}", f"--warmup={warmup}"]
            lasgd_cmd = [binary, path, f"--batch={batch}", f"--lr={LR}",
                         f"--momentum={MOMENTUM}", f"--weight-decay={WEIGHT_DECAY}"] + common
            torch_cmd = [sys.executable, os.path.abspath(__file__), f"--worker={name}",
                         f"--size={args.size}"] + common
            results = {fw: [] for fw in ("lasgd", "pytorch") if fw in frameworks}
            loads = [os.getloadavg()[0]]
            for r in range(args.rounds):
                order = [fw for fw in (["lasgd", "pytorch"] if r % 2 == 0 else
                                       ["pytorch", "lasgd"]) if fw in frameworks]
                for fw in order:
                    res = run_json(lasgd_cmd if fw == "lasgd" else torch_cmd, env)
                    results[fw].append(res)
                    print(f"{name} round {r} {fw}: {res['samples_per_s']:.1f} samples/s, "
                          f"peak RSS {res['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
                loads.append(os.getloadavg()[0])
            med = {fw: statistics.median(x["samples_per_s"] for x in v) for fw, v in results.items()}
            rss = {fw: statistics.median(x["peak_rss_bytes"] for x in v) for fw, v in results.items()}
            arena = results["lasgd"][0].get("arena_bytes", 0) if "lasgd" in results else None
            shape = "x".join(map(str, sample_shape(name, args.size)))
            torch_base = (statistics.median(x["rss_after_import_bytes"] for x in results["pytorch"])
                          if "pytorch" in results else None)
            rows.append((name, batch, shape, med.get("lasgd"), med.get("pytorch"), rss.get("lasgd"),
                         rss.get("pytorch"), arena, torch_base, min(loads), max(loads)))
            print(f"{name}: " + "; ".join(
                f"{fw} {med[fw]:.1f} samples/s, peak RSS {rss[fw] / 2**20:.0f} MiB"
                for fw in results), flush=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    with open(args.out, "a") as f:
        f.write(f"\n### {stamp} — {args.threads} threads, torch {torch.__version__}, {cpu}, "
                f"{os.cpu_count()} cores\n\n")
        where = f"--binary {args.binary}" if args.binary else f"--build {args.build}"
        f.write(f"`python3 bench/train_vs_pytorch.py {where} --threads {args.threads} "
                f"--rounds {args.rounds} --iters {args.iters} --warmup {args.warmup} "
                f"--cnn-iters {args.cnn_iters} --cnn-warmup {args.cnn_warmup} "
                f"--size {args.size} --models {args.models}"
                + (f" --frameworks {args.frameworks}" if args.frameworks != "lasgd,pytorch" else "")
                + "`\n\n")
        f.write("| model | batch | sample | lasgd samples/s | PyTorch samples/s | lasgd / PyTorch "
                "| lasgd peak RSS | PyTorch peak RSS (after import) | lasgd / PyTorch RSS "
                "| lasgd arena | load average |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|\n")
        def num(v, fmt):
            return "-" if v is None else fmt.format(v)

        def ratio(a, b, fmt):
            return "-" if a is None or b is None else fmt.format(a / b)

        def mib(v):
            return "-" if v is None else f"{v / 2**20:.0f} MiB"

        for name, batch, shape, l, t, lr_, tr, arena, base, lo, hi in rows:
            torch_rss = "-" if tr is None else f"{mib(tr)} ({mib(base)})"
            f.write(f"| {name} | {batch} | {shape} | {num(l, '{:.1f}')} | {num(t, '{:.1f}')} "
                    f"| {ratio(l, t, '{:.2f}x')} | {mib(lr_)} | {torch_rss} "
                    f"| {ratio(lr_, tr, '{:.2f}')} | {mib(arena)} | {lo:.1f}–{hi:.1f} |\n")
        f.write(f"\nMedians over {args.rounds} rounds; each round runs each framework in its own "
                f"process (CNN: {args.cnn_warmup} warm-up + {args.cnn_iters} timed steps; the "
                f"others: {args.warmup} + {args.iters}; SGD with momentum {MOMENTUM}, weight decay "
                f"{WEIGHT_DECAY}, lr {LR}, cross-entropy, one fixed random batch; the median step "
                f"time gives samples/s), alternating which goes first. Peak RSS is VmHWM of "
                f"that process (not ru_maxrss, which Linux carries across exec from the "
                f"parent); \"after import\" is PyTorch's resident size right after "
                f"`import torch`, before any model exists. Load average (1 min) sampled between "
                f"rounds on a machine shared with other builds.\n")
        if args.note:
            f.write(f"\n{args.note}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
