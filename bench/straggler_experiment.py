#!/usr/bin/env python3
"""The distributed experiment: time to a target test accuracy and final
accuracy of lasgd, sync, local and sgp on N ranks (one machine standing in for
a cluster) in four scenarios:

  none    no straggler
  slow    one rank 2x slower
  jitter  random per-step delay on every rank (exponential, mean --jitter-ms)
(lasgd counts its segments in wall time, --segment-ms, in the scenarios of
--lasgd-segment-ms-scenarios: by default the slow-rank one)
  net     1 ms latency and 100 MB/s per message

Every run is `mpirun -np N build/bin/lasgd-run train zoo/fashion-mnist/config.toml
--set ...` with train.curve_every_s: rank 0 copies its model every few seconds
and evaluates the copies after training, so evaluation never slows the run.
Writes a markdown table, a JSON file with every curve, and a PNG plot of test
accuracy against wall time (one panel per scenario).

    python3 bench/straggler_experiment.py            # all 16 runs
    python3 bench/straggler_experiment.py --scenarios none,jitter --algorithms lasgd,sync

Results of finished runs are kept in the JSON file and not run again unless
--rerun is given, so an interrupted experiment continues where it stopped.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ALGORITHMS = ["lasgd", "sync", "local", "sgp"]
SCENARIOS = ["none", "slow", "jitter", "net"]
SCENARIO_TITLES = {
    "none": "no straggler",
    "slow": "one rank 2x slower",
    "jitter": "random per-step jitter",
    "net": "1 ms latency, 100 MB/s",
}


def run_settings(algorithm, scenario, args):
    """The --set overrides of one run."""
    s = {
        "distributed.algorithm": algorithm,
        "distributed.segment_steps": args.segment_steps,
        "data.batch_size": args.batch,
        "train.epochs": args.epochs,
        "train.threads": 1,
        "train.progress": "false",
        "train.log_every_steps": 1000000,
        "train.eval_every_epochs": 1000,
        "train.checkpoint_every_epochs": 0,
        "train.export": "",
        "train.curve_every_s": args.curve_every_s,
        "schedule.warmup_steps": args.warmup_steps,
        "optimizer.lr": args.lr,
        "distributed.timeout_s": 600,
    }
    for item in args.set:
        k, v = item.split("=", 1)
        s[k] = v
    if algorithm == "lasgd":
        s["distributed.apply"] = args.lasgd_apply
        s["distributed.warmup_steps"] = args.lasgd_warmup_steps
        if args.lasgd_segment_steps:
            s["distributed.segment_steps"] = args.lasgd_segment_steps
    if algorithm == "lasgd" and scenario in args.lasgd_segment_ms_scenarios.split(","):
        s["distributed.segment_ms"] = args.segment_ms
    if algorithm == "lasgd":
        for item in args.lasgd_set:
            k, v = item.split("=", 1)
            s[k] = v
    if scenario == "slow":
        s["distributed.slow_rank"] = args.ranks - 1
        s["distributed.slow_factor"] = 2
    elif scenario == "jitter":
        s["distributed.jitter_ms"] = args.jitter_ms
    elif scenario == "net":
        s["distributed.latency_ms"] = 1
        s["distributed.bandwidth_mb_s"] = 100
    return s


def run_key(scenario, algorithm, seed):
    """The JSON key of one run; seed 0 keeps the key older files used."""
    return f"{scenario}/{algorithm}" + (f"/seed{seed}" if seed else "")


def run_one(algorithm, scenario, seed, args):
    out_dir = os.path.join(args.work, f"{scenario}-{algorithm}")
    subprocess.run(["rm", "-rf", out_dir], check=True)
    settings = run_settings(algorithm, scenario, args)
    settings["data.seed"] = seed
    settings["train.out_dir"] = out_dir
    cmd = ["mpirun", "--bind-to", "none", "--oversubscribe", "-np", str(args.ranks),
           os.path.join(ROOT, "build/bin/lasgd-run"), "train",
           os.path.join(ROOT, "zoo/fashion-mnist/config.toml")]
    for k, v in settings.items():
        cmd += ["--set", f"{k}={v}"]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    print(f"[{datetime.datetime.now():%H:%M:%S}] {scenario:6s} {algorithm:5s} seed {seed} ...",
          flush=True)
    start = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{scenario}/{algorithm} failed with exit code {proc.returncode}")
    curve = [json.loads(line) for line in open(os.path.join(out_dir, "curve.jsonl"))]
    metrics = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
    last = metrics[-1]
    result = {
        "algorithm": algorithm, "scenario": scenario, "seed": seed, "process_wall_s": wall,
        "curve": curve, "final_top1": last["test_top1"], "train_wall_s": curve[-1]["wall_s"],
        "ranks": last.get("ranks", []), "settings": settings,
        "time_to_target_s": time_to(curve, args.target),
        "time_to_target_average_s": time_to(curve, args.target, "average_top1"),
    }
    ttt = result["time_to_target_s"]
    print(f"    final {100 * result['final_top1']:.2f}%  time to {100 * args.target:.0f}%: "
          f"{'%.1f s' % ttt if ttt is not None else 'not reached'}  ({wall:.0f} s)", flush=True)
    return result


def time_to(curve, target, key="test_top1"):
    """Wall time of the first snapshot at or above target, interpolated
    linearly from the one before it. key "average_top1" reads the newest
    average of all ranks' models where the point has one (lasgd, local; not
    the last point, where rank 0's model is the final average) and rank 0's
    own model elsewhere."""
    def acc(p):
        return p.get(key, p["test_top1"])
    prev = None
    for p in curve:
        if acc(p) >= target:
            if prev is None or acc(p) == acc(prev):
                return p["wall_s"]
            f = (target - acc(prev)) / (acc(p) - acc(prev))
            return prev["wall_s"] + f * (p["wall_s"] - prev["wall_s"])
        prev = p
    return None


def runs_of(results, scenario, algorithm):
    """Every recorded run of one cell, seed 0 first."""
    runs = [r for k, r in results.items()
            if k == f"{scenario}/{algorithm}" or k.startswith(f"{scenario}/{algorithm}/seed")]
    return sorted(runs, key=lambda r: r.get("seed", 0))


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def lasgd_settings(run):
    """The lasgd knobs a run used, from its recorded settings."""
    st = run["settings"]
    parts = [f"apply {st.get('distributed.apply', 'boundary')}"]
    if "distributed.segment_ms" in st:
        parts.append(f"segment_ms {st['distributed.segment_ms']}")
    else:
        parts.append(f"segment_steps {st['distributed.segment_steps']}")
    if st.get("distributed.warmup_steps"):
        parts.append(f"warmup {st['distributed.warmup_steps']}")
    if str(st.get("distributed.average_optimizer_state", "false")).lower() == "true":
        parts.append("optimizer state averaged")
    return ", ".join(parts)


def write_table(results, args, path):
    lines = [
        "# Distributed experiment: LASGD against sync, local SGD and SGP under stragglers",
        "",
        f"Fashion-MNIST, the `zoo/fashion-mnist` CNN, {args.ranks} ranks on one machine "
        f"(`mpirun --oversubscribe`), {args.batch} samples per rank per step, "
        f"{args.epochs} epochs, lr {args.lr}, segment_steps {args.segment_steps} "
        f"(local), jitter mean {args.jitter_ms} ms. Test accuracy of rank 0's model every "
        f"{args.curve_every_s} s of training, evaluated after the run (the time to the target "
        "and the speed-up use rank 0's own model; the column \"newest average\" uses, for "
        "lasgd and local, the newest exact average of all ranks' models rank 0 held at that "
        "moment, which is what stopping the run there would give up to one segment). Each cell is the mean "
        "over the seeds listed (data.seed: the shuffling); the speed-up divides sync's mean "
        "time to the target by the algorithm's, and both it and the accuracy difference use "
        "sync's runs with the same seeds.",
        "",
        f"Produced by `python3 bench/straggler_experiment.py {' '.join(sys.argv[1:])}` on "
        f"{datetime.date.today()} ({platform.node()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end).",
        "",
        f"| scenario | algorithm | seeds | time to {100 * args.target:.0f}% (s) | speed-up vs sync | "
        "final top-1 (%) | vs sync (points) | final top-1 per seed (%) | train wall (s) | "
        f"rank-0 wait (s) | time to {100 * args.target:.0f}%, newest average (s) | lasgd settings |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        sync_by_seed = {r.get("seed", 0): r for r in runs_of(results, scenario, "sync")}
        for algorithm in ALGORITHMS:
            runs = runs_of(results, scenario, algorithm)
            if not runs:
                continue
            ttt = [r["time_to_target_s"] for r in runs]
            reached = [t for t in ttt if t is not None]
            time_cell = f"{mean(reached):.1f}" if reached else "not reached"
            if len(reached) < len(ttt):
                time_cell += f" ({len(ttt) - len(reached)} not reached)"
            final = mean([r["final_top1"] for r in runs])
            # Against sync on the same seeds (paired): a cell with fewer seeds
            # is compared with sync's runs of those seeds only.
            paired = [(r, sync_by_seed[r.get("seed", 0)]) for r in runs
                      if r.get("seed", 0) in sync_by_seed]
            speedup = delta = ""
            if paired:
                delta = f"{100 * mean([r['final_top1'] - q['final_top1'] for r, q in paired]):+.2f}"
                mine = [r["time_to_target_s"] for r, _ in paired]
                theirs = [q["time_to_target_s"] for _, q in paired]
                if None not in mine and None not in theirs:
                    speedup = f"{mean(theirs) / mean(mine):.2f}x"
            per_seed = ", ".join(f"{100 * r['final_top1']:.2f}" for r in runs)
            seeds = ",".join(str(r.get("seed", 0)) for r in runs)
            wall = mean([r["train_wall_s"] for r in runs])
            wait = mean([r["ranks"][0]["wait_s"] for r in runs if r["ranks"]])
            knobs = lasgd_settings(runs[0]) if algorithm == "lasgd" else ""
            # Runs recorded before curves carried the average have no such time.
            avg_ttt = [r.get("time_to_target_average_s", "absent") for r in runs]
            avg_reached = [t for t in avg_ttt if t not in (None, "absent")]
            avg_cell = (f"{mean(avg_reached):.1f}" if avg_reached and len(avg_reached) == len(runs)
                        else "")
            lines.append(
                f"| {SCENARIO_TITLES[scenario]} | {algorithm} | {seeds} | {time_cell} | {speedup} | "
                f"{100 * final:.2f} | {delta} | {per_seed} | {wall:.1f} | "
                f"{wait if wait is not None else float('nan'):.1f} | {avg_cell} | {knobs} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(results, args, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(5 * len(SCENARIOS), 4), sharey=True)
    for ax, scenario in zip(axes, SCENARIOS):
        for algorithm in ALGORITHMS:
            r = results.get(run_key(scenario, algorithm, 0))  # seed 0's curve
            if r is None:
                continue
            ax.plot([p["wall_s"] for p in r["curve"]], [100 * p["test_top1"] for p in r["curve"]],
                    label=algorithm, marker=".")
        ax.axhline(100 * args.target, color="gray", linestyle=":", linewidth=1)
        ax.set_title(SCENARIO_TITLES[scenario])
        ax.set_xlabel("wall time (s)")
        ax.set_ylim(80, 93)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test top-1 (%)")
    axes[0].legend()
    fig.suptitle(f"Fashion-MNIST CNN, {args.ranks} ranks: test accuracy against wall time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ranks", type=int, default=4)
    p.add_argument("--algorithms", default=",".join(ALGORITHMS))
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=32, help="samples per rank per step")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--segment-steps", type=int, default=8)
    p.add_argument("--segment-ms", type=float, default=2000)
    p.add_argument("--lasgd-segment-ms-scenarios", default="slow",
                   help="scenarios where lasgd counts segments in wall time (--segment-ms)")
    p.add_argument("--lasgd-apply", default="boundary", choices=["boundary", "when_ready"])
    p.add_argument("--lasgd-warmup-steps", type=int, default=0,
                   help="lasgd: synchronous gradient averaging for the first steps")
    p.add_argument("--lasgd-segment-steps", type=int, default=0,
                   help="segment_steps for lasgd only (0 = --segment-steps)")
    p.add_argument("--jitter-ms", type=float, default=100)
    p.add_argument("--curve-every-s", type=float, default=5)
    p.add_argument("--target", type=float, default=0.90)
    p.add_argument("--seeds", default="0",
                   help="comma-separated data.seed values (shuffling); every cell runs once per seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra lasgd-run --set override for every run (repeatable)")
    p.add_argument("--lasgd-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra --set override for lasgd runs only (repeatable)")
    p.add_argument("--work", default="/tmp/lasgd-straggler")
    p.add_argument("--results", default=os.path.join(ROOT, "bench/results/straggler_fashion_mnist"))
    p.add_argument("--rerun", action="store_true",
                   help="run the selected scenarios/algorithms again even if recorded")
    p.add_argument("--report-only", action="store_true",
                   help="only rewrite the table and plot from the JSON file")
    args = p.parse_args()

    json_path = args.results + ".json"
    results = {}
    if os.path.exists(json_path):
        results = json.load(open(json_path))
    for seed in [] if args.report_only else [int(x) for x in args.seeds.split(",")]:
        for scenario in args.scenarios.split(","):
            for algorithm in args.algorithms.split(","):
                key = run_key(scenario, algorithm, seed)
                if key in results and not args.rerun:
                    continue
                results[key] = run_one(algorithm, scenario, seed, args)
                with open(json_path, "w") as f:
                    json.dump(results, f, indent=1)
    write_table(results, args, args.results + ".md")
    plot(results, args, args.results + ".png")
    print(open(args.results + ".md").read())


if __name__ == "__main__":
    main()
