"""What the reliability guards cost, next to the work they guard, measured in one run.

- Shards: the real pipeline (in process, one worker) builds a dataset from a seeded random genome
  and simulated epigenome (bench/sim_inputs.py: 2 cell types x 15 states + 2 bigWig tracks, 1 kb
  windows, 200 bp bins, k = 1, 2,048 windows a shard, gzip). The guards' time is taken inside
  that build: reading each shard back before it is recorded (datasets and shapes) and hashing it
  (its sha256 for the sidecar), against the time of building the shards. Target: < 2% of a shard
  build for the read-back plus the lock (the hash is the record's checksum, also reported).
- Folder lock: acquiring and releasing ``folder_lock`` (median of many), against the same build.
- Checkpoints: for ebert_tiny and a BERT-base-sized EBERT (params/ebert_base.yaml, after one
  AdamW step so the optimizer state is full), a save with its checksum file (``atomic_torch_save``:
  the file is hashed on a thread while it is fsynced) interleaved with the same save without one
  (``atomic_path`` + torch.save), plus the finiteness check of the weights; and reading it
  (``torch_load``) against reading it while it is verified on a thread (``read_verified``); the fastest of the repeats
  of each (fsync times on a shared disk vary far more than the guards cost). Target: checksummed
  save - plain save < 2% of a plain save; the finiteness check is reported beside it.

Writes bench/results/reliability.json.

    PYTHONPATH=. python bench/bench_reliability.py [--quick]
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bench import sim_inputs
from bench.common import bench_parser, machine, summarize, target, write_json
from ebert_modelzoo.atomic import atomic_path
from ebert_modelzoo.config import load_params
from ebert_modelzoo.folder_lock import folder_lock
from ebert_modelzoo.preprocessing import pipeline, writer
from ebert_modelzoo.preprocessing.config import load_config
from ebert_modelzoo.training.checkpoint import atomic_torch_save, read_verified, torch_load
from ebert_modelzoo.training.loop import _check_finite
from ebert_modelzoo.training.optim import param_groups
from ebert_modelzoo.training.tasks import Task

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "reliability.json"


class Timed:
    """Wraps a module function, adding up the seconds spent in it."""

    def __init__(self, module: Any, name: str) -> None:
        self.module, self.name, self.seconds, self.calls = module, name, 0.0, 0
        self.original: Callable[..., Any] = getattr(module, name)

    def __enter__(self) -> "Timed":
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began
                self.calls += 1

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc: Any) -> None:
        setattr(self.module, self.name, self.original)


def _random_fasta(path: Path, length: int, rng: np.random.Generator) -> Path:
    seq = "".join(np.array(list("ACGT"))[rng.integers(0, 4, size=length)])
    return sim_inputs.write_fasta(path, seq)


def shard_guards(folder: Path, length: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    fasta = _random_fasta(folder / "genome.fa", length, rng)
    manifest = sim_inputs.write_epigenome(folder, length, 2, ("DNase", "H3K27ac"), rng)
    config = sim_inputs.write_config(folder / "config.yaml", fasta, manifest, [f"{sim_inputs.SIGNAL_CONTIG}:0-{length}"],
                                     folder / "out", window=1000, bin_size=200)
    plan = pipeline.make_plan(load_config(config, "pretraining"), "pretraining")
    with Timed(pipeline, "build_shard") as build, Timed(writer, "_check_shard") as read_back, \
            Timed(writer, "sha256_file") as checksum:
        began = time.perf_counter()
        with folder_lock(plan.output_dir, "preprocessing run"):
            pipeline.run(plan, progress=False)
        total = time.perf_counter() - began
    locks = []
    for _ in range(200):
        began = time.perf_counter()
        with folder_lock(folder / "lock_probe"):
            pass
        locks.append(time.perf_counter() - began)
    lock = summarize(locks)
    shards = build.calls
    return {
        "genome_bp": length, "shards": shards, "windows_per_shard": 2048,
        "run_seconds": total, "shard_build_seconds": build.seconds,
        "read_back_seconds": read_back.seconds, "checksum_seconds": checksum.seconds,
        "lock_seconds": lock,
        "read_back_fraction_of_build": read_back.seconds / build.seconds,
        "checksum_fraction_of_build": checksum.seconds / build.seconds,
        "lock_fraction_of_one_shard_build": lock["median_s"] / (build.seconds / shards),
    }


def checkpoint_guards(params_file: str, folder: Path, repeats: int) -> dict[str, Any]:
    init = load_params(ROOT / "params" / params_file).trainer.init
    torch.manual_seed(0)
    model = Task(init.model).build_model()
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    path = folder / f"checkpoint_{params_file.split('.')[0]}.mdl"
    plain = folder / "plain.mdl"

    def plain_save() -> None:
        with atomic_path(plain) as tmp, open(tmp, "wb") as handle:
            torch.save(state, handle)

    times: dict[str, list[float]] = {k: [] for k in ("plain_save", "save", "finite_check", "load", "verified_load")}
    for _ in range(repeats):
        for name, work in (("plain_save", plain_save), ("save", lambda: atomic_torch_save(state, path)),
                           ("finite_check", lambda: _check_finite(state["model"], 0, folder)),
                           ("verified_load", lambda: read_verified(path, torch_load)),
                           ("load", lambda: torch_load(path))):
            began = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - began)
    # the fastest of the repeats: fsync times on a shared disk vary far more than the guards cost
    best = {name: min(values) for name, values in times.items()}
    return {
        "params": params_file, "parameters": sum(p.numel() for p in model.parameters()),
        "file_mb": path.stat().st_size / 2**20, "repeats": repeats,
        "seconds": {name: summarize(values) for name, values in times.items()},
        "guards_fraction_of_save": (best["save"] - best["plain_save"] + best["finite_check"]) / best["plain_save"],
        "checksum_file_fraction_of_save": (best["save"] - best["plain_save"]) / best["plain_save"],
        "finite_check_fraction_of_save": best["finite_check"] / best["plain_save"],
        "verification_fraction_of_load": (best["verified_load"] - best["load"]) / best["load"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, "small sizes, seconds; no target judged", RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result: dict[str, Any] = {"benchmark": "reliability", "quick": args.quick, "conditions": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        result["shards"] = shard_guards(Path(tmp) / "shards", 200_000 if args.quick else 6_000_000)
        result["checkpoints"] = [checkpoint_guards(name, Path(tmp), 2 if args.quick else (20 if name == "ebert_tiny.yaml" else 5))
                                 for name in (("ebert_tiny.yaml",) if args.quick else ("ebert_tiny.yaml", "ebert_base.yaml"))]
    shards = result["shards"]
    shard_cost = shards["read_back_fraction_of_build"] + shards["lock_fraction_of_one_shard_build"]
    save_cost = max(c["checksum_file_fraction_of_save"] for c in result["checkpoints"])
    judge = None if args.quick else True
    result["targets"] = {
        "shard_guards": target("read-back + lock < 2% of a shard build", shard_cost,
                               None if judge is None else shard_cost < 0.02),
        "checkpoint_checksum": target("checksummed - plain save < 2% of a plain save (largest over the models)", save_cost,
                                    None if judge is None else save_cost < 0.02),
    }
    write_json(args.out, result)
    print(f"shard read-back {shards['read_back_fraction_of_build']:.2%}, checksum {shards['checksum_fraction_of_build']:.2%}, "
          f"lock {shards['lock_fraction_of_one_shard_build']:.3%} of a shard build; checkpoint checksum file "
          + ", ".join(f"{c['params']} {c['checksum_file_fraction_of_save']:+.2%}, finiteness check "
                      f"{c['finite_check_fraction_of_save']:.2%} of a save" for c in result["checkpoints"]))


if __name__ == "__main__":
    main()
