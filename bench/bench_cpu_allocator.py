"""CPU training steps with glibc's default allocator settings vs ``keep_freed_memory`` (what run.py's
CPU backend and the demo set), side by side.

Each measurement is a fresh process (the settings hold for a whole process) that trains EBERT for
a number of steps after a warmup; the two settings alternate round by round (A, B, then B, A, ...)
and the report takes medians. Shapes: the demo's tiny encoder (hidden 64, 2 layers, batch 16 x
256 tokens: 5 bins of 50 4-mers, 15 states + 3 tracks) and the training benchmark's tiny shape.
Ratio = default / keep (> 1: keeping freed memory is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.bench_training import SHAPES, Shape, _optimizer, _train_fn, ebert_config, make_batches
from bench.common import bench_parser, machine, target, write_json
from ebert_modelzoo.cpu_allocator import keep_freed_memory
from ebert_modelzoo.models.ebert import EBertForPreTrainingModel

RESULTS = Path(__file__).parent / "results" / "cpu_allocator.json"
ROOT = Path(__file__).resolve().parents[1]
ALLOCATOR_SHAPES = {
    "demo_tiny": Shape("demo_tiny", 64, 2, 2, 256, 256, 16, 50, 5, 40, tracks=3),
    "tiny": SHAPES["tiny"],
}
QUICK_SHAPES = {"demo_tiny": ALLOCATOR_SHAPES["demo_tiny"]}
SETTINGS = ("default", "keep")
WARMUP_STEPS = 5


def child(setting: str, shape: Shape, steps: int, threads: int) -> dict[str, float]:
    """Per-step wall and CPU seconds and minor page faults of ``steps`` training steps in this process."""
    torch.set_num_threads(threads)
    applied = keep_freed_memory() if setting == "keep" else False
    batch, _ = make_batches(shape)
    torch.manual_seed(0)
    model = EBertForPreTrainingModel(ebert_config(shape))
    step = _train_fn(model, lambda: model(batch), _optimizer(model, torch.device("cpu")), torch.device("cpu"), None)
    for _ in range(WARMUP_STEPS):
        step()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"applied": applied, "wall_s_per_step": wall / steps,
            "cpu_s_per_step": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / steps,
            "system_s_per_step": (after.ru_stime - before.ru_stime) / steps,
            "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps}


def measure(name: str, steps: int, threads: int, repeats: int) -> dict[str, Any]:
    """Interleaved rounds of both settings for shape ``name``, each in its own process; medians."""
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in SETTINGS}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for round_index in range(repeats):
        for setting in SETTINGS if round_index % 2 == 0 else reversed(SETTINGS):
            done = subprocess.run([sys.executable, __file__, "--child", setting, "--shape", name, "--steps", str(steps),
                                   "--threads", str(threads)], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
            runs[setting].append(json.loads(done.stdout.splitlines()[-1]))
    medians = {s: {key: statistics.median(r[key] for r in runs[s]) for key in runs[s][0] if key != "applied"}
               for s in SETTINGS}
    return {"shape": ALLOCATOR_SHAPES[name].__dict__, "steps": steps, "keep_applied": runs["keep"][0]["applied"],
            "medians": medians, "runs": runs,
            "ratio_wall_default_over_keep": medians["default"]["wall_s_per_step"] / medians["keep"]["wall_s_per_step"],
            "ratio_cpu_default_over_keep": medians["default"]["cpu_s_per_step"] / medians["keep"]["cpu_s_per_step"]}


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, "the demo's shape only, 10 steps, 1 round", RESULTS)
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per process")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (processes per setting)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the demo trains on one per run)")
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--shape", choices=sorted(ALLOCATOR_SHAPES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, ALLOCATOR_SHAPES[args.shape], args.steps, args.threads)))
        return
    shapes = ALLOCATOR_SHAPES
    if args.quick:
        args.steps, args.repeats, shapes = 10, 1, QUICK_SHAPES
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"benchmark": "cpu_allocator", "quick": args.quick,
                              "conditions": {**machine(), "clock": "wall and process CPU seconds, one process per measurement",
                                             "warmup_steps": WARMUP_STEPS},
                              "shapes": {}}
    for name in shapes:
        entry = result["shapes"][name] = measure(name, args.steps, args.threads, args.repeats)
        print(f"{name}: default {entry['medians']['default']['wall_s_per_step'] * 1e3:.1f} ms/step, keep "
              f"{entry['medians']['keep']['wall_s_per_step'] * 1e3:.1f} ms/step (x{entry['ratio_wall_default_over_keep']:.2f}); "
              f"minor faults/step {entry['medians']['default']['minor_faults_per_step']:.0f} vs "
              f"{entry['medians']['keep']['minor_faults_per_step']:.0f}", flush=True)
    demo = result["shapes"]["demo_tiny"]
    judged = not args.quick and demo["keep_applied"]
    result["targets"] = {"demo_tiny_wall_default_over_keep": target(
        "> 1 (keeping freed memory makes the demo's training step faster)", demo["ratio_wall_default_over_keep"],
        demo["ratio_wall_default_over_keep"] > 1 if judged else None)}
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
