"""`python -m ebert_modelzoo.demo [--quick] [--output_dir demo_output] [--fresh]`: the embedded
default experiment (what `make demo` runs).

On the shipped demo data (data_processing/demo_data: real GRCh37 chrX DNA and JASPAR motifs,
simulated epigenome and TF labels for six cell types) it preprocesses with the real pipeline,
pre-trains two tiny EBERTs (DNA + epigenome, DNA only), fine-tunes five variants for
cell-type-specific TF binding with several seeds each, scores the held-out cell type sim_tissue1
on the held-out stretches chrX:49.0-49.5 and 50.5-51.5 Mb beside the motif + accessibility baseline, two
logistic-regression floors and a CNN peer, writes a report folder and checks what variants (a)
and (a0) learned against the planted motifs (the report's last section; needs the ``interpret``
extra).
Everything goes under --output_dir; a rerun reuses finished work (see stages.py), --fresh
removes it first.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ebert_modelzoo.atomic import atomic_write_text
from ebert_modelzoo.config.base import read_yaml
from ebert_modelzoo.cpu_allocator import keep_freed_memory
from ebert_modelzoo.demo import stages
from ebert_modelzoo.demo.runs import FINETUNE_PARAMS, QUICK_SEEDS, SEEDS, plan_runs
from ebert_modelzoo.errors import BadInputError, one_line
from ebert_modelzoo.evaluation.report import EvaluationSet

LOGGER = logging.getLogger("ebert_modelzoo.demo")
INTERPRETED_VARIANTS = ("finetune_motifs", "finetune_dna_epigenome")
"""The variants (their first seed) whose attributions the report checks against the simulation's
truth: (a), the best, which is handed the planted matrices as motif tracks (ISM shows it uses them,
gradient x input what it learned from the DNA tokens beyond them), and (a0), which has no motif
tracks, so its attributions show what it learned from the DNA itself."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ebert_modelzoo.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="demo_output", help="where everything goes (default demo_output)")
    parser.add_argument("--quick", action="store_true", help="a minute or two: few training steps (a smoke test)")
    parser.add_argument("--fresh", action="store_true",
                        help="remove the demo's earlier outputs in --output_dir first (only in a folder the demo made)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads per training run (default 1: the tiny model is fastest on one thread)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="training runs at once, each in its own process (default 2: the demo's 2-core machine)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    return parser


def _timings(output_dir: Path, measured: dict[str, float], cached: set[str]) -> dict[str, Any]:
    """Seconds per step as measured when it last did its work: a step this run found finished
    (``cached``) keeps the time stored by the run that did it (.demo_state/timings.json), so a
    rerun never replaces measured timings with a cache lookup's."""
    path = output_dir / stages.STATE_DIR / "timings.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    merged = {name: stored.get(name, seconds) if name in cached else seconds for name, seconds in measured.items()}
    atomic_write_text(path, json.dumps(merged, indent=1) + "\n")
    runs = {name for name in merged if name.startswith(("pretrain_", "finetune_"))}
    return {"seconds": merged, "total_seconds": round(sum(v for k, v in merged.items() if k not in runs), 1),
            "reused_from_an_earlier_run": sorted(cached & set(stored))}



def run(args: argparse.Namespace) -> str:
    """Every step; returns the console summary."""
    start = time.perf_counter()
    output_dir = Path(args.output_dir)
    stages.claim(output_dir, args.fresh)
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # the CNN peer and the attributions train and score in this process
    split = read_yaml(stages.DEMO_DATA / "split.yaml")["split"]
    train_cells, test_cells = split["train"]["cell_types"], split["test"]["cell_types"]
    timings: dict[str, float] = {}
    cached: set[str] = set()

    def lap(name: str, began: float) -> float:
        timings[name] = round(time.perf_counter() - began, 1)
        return time.perf_counter()

    began = time.perf_counter()
    LOGGER.info("[1/6] preprocessing the demo data into %s", output_dir / "data")
    finished = all((output_dir / "data" / kind / part / "data_params.json").is_file()
                   for kind in ("pretraining", "finetuning") for part in ("train", "validation", "test"))
    data = stages.preprocess(output_dir, not args.no_progress)
    stages.check_split(data, split)
    fingerprints = {kind: stages.data_fingerprint(folder) for kind, folder in data.items()}
    if finished:
        cached.add("preprocessing")
    began = lap("preprocessing", began)

    runs = plan_runs(output_dir, args.quick)
    LOGGER.info("[2/6] training %d runs (%s)", len(runs), ", ".join(r.name for r in runs))
    results, run_seconds = stages.train_all(runs, output_dir, fingerprints, args.jobs, args.threads)
    timings.update(run_seconds)
    cached |= {name for name, result in results.items() if result.cached}
    if all(result.cached for result in results.values()):
        cached.add("training")
    began = lap("training", began)

    LOGGER.info("[3/6] scoring the test split: %s on %s", ", ".join(test_cells), ", ".join(split["test"]["regions"]))
    fine_tuned = [r for r in results.values() if r.run.stage == "fine-tuning"]
    variants = [stages.variant(r, stages.predictions(r)) for r in fine_tuned]
    began = lap("predictions", began)

    LOGGER.info("[4/6] baselines, floors and the CNN peer on the same split")
    ft_params = read_yaml(FINETUNE_PARAMS)["trainer"]["fit"]["train_dataloader"]
    tracks = ft_params.get("signal_tracks") or None
    variants.append(stages.baseline(data["finetuning"], train_cells, test_cells))
    began = lap("motif_accessibility_baseline", began)
    variants += stages.floors(data["finetuning"], train_cells, test_cells, tracks)
    began = lap("floors", began)
    steps = plan_runs(output_dir, args.quick)[-1].max_steps
    variants += stages.cnn_peer(data["finetuning"], train_cells, test_cells, tracks,
                                QUICK_SEEDS if args.quick else SEEDS, steps)
    began = lap("cnn_peer", began)

    LOGGER.info("[5/6] writing the report")
    evaluation = EvaluationSet(tuple(test_cells), tuple(split["test"]["regions"]),
                               note="Real GRCh37 DNA and JASPAR motifs; simulated epigenome and TF binding "
                                    "(data_processing/demo_data/README.md).",
                               block_windows=stages.block_windows(data["finetuning"]),
                               region_windows=stages.region_windows(data["finetuning"], split["test"]["regions"]))
    extra = {
        "mode": "quick" if args.quick else "default",
        "runs": {r.run.name: {"title": r.run.title, "stage": r.run.stage, "steps": r.run.max_steps, "seed": r.run.seed,
                              "params": stages.relative(r.params_file), "command": r.command} for r in results.values()},
        "train_cell_types": train_cells,
        "threads": args.threads,
        "jobs": args.jobs,
    }
    files = stages.report(output_dir, variants, evaluation, stages.curves(list(results.values())),
                          {**extra, **_timings(output_dir, {**timings}, cached)})
    began = lap("report", began)
    LOGGER.info("[6/6] what the model learned: attributions against the planted motifs")
    seed = (QUICK_SEEDS if args.quick else SEEDS)[0]
    stages.interpretation(output_dir, [results[f"{name}_seed{seed}"] for name in INTERPRETED_VARIANTS],
                          data["finetuning"], test_cells[0], args.quick, not args.no_progress, args.jobs * args.threads)
    lap("interpretation", began)
    return stages.summary(files, time.perf_counter() - start)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; errors print one line and return non-zero."""
    args = build_parser().parse_args(argv)
    if args.threads < 1 or args.jobs < 1:
        build_parser().error("--threads and --jobs must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    # one "chrX -> X" line per demo file, twice: the demo data's README explains the mapping
    logging.getLogger("ebert_modelzoo.preprocessing.genome").setLevel(logging.WARNING)
    try:
        print(run(args))
    except stages.DemoError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 1
    except (BadInputError, FileNotFoundError, ValueError) as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
