"""What the reliability guards cost, next to the work they guard, measured in one run.

- Shards: the real pipeline (in process, one worker) builds a dataset from a seeded random genome
  and simulated epigenome (bench/sim_inputs.py: 2 cell types x 15 states + 2 bigWig tracks, 1 kb
  windows, 200 bp bins, k = 1, 2,048 windows a shard, gzip). The guards' time is taken inside
  that build: reading each shard back before it is recorded (datasets and shapes) and hashing it
  (its sha256 for the sidecar), against the time of building the shards. Target: < 2% of a shard
  build for the read-back plus the lock (the hash is the record's checksum, also reported).
- Folder lock: acquiring and releasing ``folder_lock`` (median of many), against the same build.
- Checkpoints: for ebert_tiny and a BERT-base-sized EBERT (params/ebert_base.yaml, after one
  AdamW step so the optimizer state is full), wall and process CPU seconds of each case, the
  order shuffled each round so no case always follows another (a 1 GB load before a save, say),
  each save to a new step's name as in training (the files deleted between calls, untimed):
  a save with its checksum file (``atomic_torch_save``: xxh3-128 of the bytes as torch.save
  streams them, large chunks on a worker thread, the checksum file fsynced there while the
  checkpoint is, torch's zip CRC-32s left out) against the same save
  without one (``atomic_path`` + torch.save with torch's defaults) and, like for like, without
  one and without the CRC-32s; the cstorch backend's route (``checkpoint_file``: the finished file
  hashed on the worker while it is fsynced); the hash's own cost, xxh3-128 of the file's bytes in
  memory, and sha256 of the file (what the checksum cost before); the finiteness check of the
  weights; reading it (``torch_load``) against reading it while it is verified on a thread
  (``read_verified``); and torch.save into /dev/null (the bytes made without a disk in the way:
  with torch's CRC-32s, without, and without but hashed as the save hashes them). Target: a save with its checksum file takes < 2% more wall time than one
  without (median of the paired rounds' ratios, largest over the models); the quartiles of the
  paired ratios, the like-for-like ratio, the CPU ratios, the same ratios of each case's best
  round, and the hash's share of a save's CPU are reported beside it, and the load average at
  the start and the end.

Writes bench/results/reliability.json.

    PYTHONPATH=. python bench/bench_reliability.py [--quick]
"""
from __future__ import annotations

import io
import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import xxhash

from bench import sim_inputs
from bench.common import bench_parser, machine, summarize, target, write_json
from ebert_modelzoo.atomic import atomic_path
from ebert_modelzoo.config.params import load_params
from ebert_modelzoo.folder_lock import folder_lock
from ebert_modelzoo.preprocessing import pipeline, writer
from ebert_modelzoo.preprocessing.config import load_config
from ebert_modelzoo.training.checkpoint import (_OVERLAP_BYTES, _HashingFile, _worker, atomic_torch_save, checkpoint_file,
                                                checkpoint_path, file_digest, read_verified, torch_load, zip_crc32)
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


def _clocks(work: Callable[[], Any]) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of ``work()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def _spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes of paired fractions."""
    q1, median, q3 = (float(q) for q in np.quantile(values, [0.25, 0.5, 0.75]))
    return {"median": median, "q1": q1, "q3": q3, "min": float(min(values)), "max": float(max(values))}


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
    saves = folder / "saves"  # each save writes a new step's name, as training does (saving a step again costs more)
    steps = itertools.count()

    def new_step() -> Path:
        return checkpoint_path(saves, next(steps))

    def plain_save(crc32: bool) -> None:  # no checksum file: atomic_path + torch.save
        with zip_crc32(crc32), atomic_path(new_step()) as tmp, open(tmp, "wb") as handle:
            torch.save(state, handle)

    def to_dev_null(hashed: bool, crc32: bool) -> None:  # the bytes made (and hashed) without a disk in the way
        with zip_crc32(crc32), open(os.devnull, "wb", buffering=0) as file:
            stream = io.BufferedWriter(_HashingFile(file, _worker()) if hashed else file, buffer_size=_OVERLAP_BYTES)
            torch.save(state, stream)
            stream.flush()

    def path_writer_save() -> None:  # the cstorch backend's route: the finished file hashed from the page cache
        with checkpoint_file(new_step()) as tmp:
            torch.save(state, tmp)

    def sha256_of_file() -> None:  # what the checksum cost before (sha256 of the finished file)
        file_digest(path, ".sha256")

    atomic_torch_save(state, path)
    content = path.read_bytes()  # what the stream hashes as torch.save writes it: hashing these bytes is its cost
    work = {"plain_save": lambda: plain_save(True), "save": lambda: atomic_torch_save(state, new_step()),
            "plain_save_without_crc32": lambda: plain_save(False), "path_writer_save": path_writer_save,
            "serialize": lambda: to_dev_null(False, True), "serialize_without_crc32": lambda: to_dev_null(False, False),
            "serialize_hashed_without_crc32": lambda: to_dev_null(True, False),
            "xxh128_of_bytes": lambda: xxhash.xxh3_128(content).hexdigest(), "sha256_of_file": sha256_of_file,
            "finite_check": lambda: _check_finite(state["model"], 0, folder),
            "verified_load": lambda: read_verified(path, torch_load), "load": lambda: torch_load(path)}
    cpu: dict[str, list[float]] = {k: [] for k in work}
    wall: dict[str, list[float]] = {k: [] for k in work}
    for name in work:  # warm-up: the worker thread, the page cache's first allocation of each file
        work[name]()
        shutil.rmtree(saves, ignore_errors=True)
    order = np.random.default_rng(0)
    for _ in range(repeats):
        for name in order.permutation(list(work)):  # shuffled each round: no case always follows another
            c, w = _clocks(work[name])
            cpu[name].append(c)
            wall[name].append(w)
            shutil.rmtree(saves, ignore_errors=True)  # untimed
    med = {name: float(np.median(v)) for name, v in cpu.items()}

    def paired(clock: dict[str, list[float]], a: str, b: str) -> dict[str, float]:
        return _spread([x / y - 1 for x, y in zip(clock[a], clock[b])])

    return {
        "params": params_file, "parameters": sum(p.numel() for p in model.parameters()),
        "file_mb": path.stat().st_size / 2**20, "repeats": repeats,
        "load_average_1min_at_end": os.getloadavg()[0],
        "cpu_seconds": {name: summarize(values) for name, values in cpu.items()},
        "wall_seconds": {name: summarize(values) for name, values in wall.items()},
        # the judged figure: a save with its checksum (atomic_torch_save) against the same save
        # without one (torch.save with torch's defaults), wall time, paired rounds
        "save_wall_over_plain": paired(wall, "save", "plain_save"),
        # like for like: both without torch's zip CRC-32s, which the checksummed save leaves out
        "save_wall_over_plain_without_crc32": paired(wall, "save", "plain_save_without_crc32"),
        "save_cpu_over_plain": paired(cpu, "save", "plain_save"),
        "save_cpu_over_plain_without_crc32": paired(cpu, "save", "plain_save_without_crc32"),
        "path_writer_wall_over_plain": paired(wall, "path_writer_save", "plain_save"),
        # the least disturbed round of each case (what a quiet machine would show), same comparisons
        "best_round_ratios": {f"{clock_name}_{a}_over_{b}": min(clock[a]) / min(clock[b]) - 1
                              for clock_name, clock in (("wall", wall), ("cpu", cpu))
                              for a, b in (("save", "plain_save"), ("save", "plain_save_without_crc32"))},
        # the hash's own CPU (xxh3-128 of the file's bytes in memory) over a checksummed save's CPU
        "checksum_cpu_fraction_of_save": med["xxh128_of_bytes"] / med["save"],
        "sha256_cpu_fraction_of_save_before": med["sha256_of_file"] / med["save"],
        "finite_check_cpu_fraction_of_save": med["finite_check"] / med["save"],
        "verification_cpu_fraction_of_load": (med["verified_load"] - med["load"]) / med["load"],
        "verified_load_wall_s": summarize(wall["verified_load"])["median_s"],
        "load_wall_s": summarize(wall["load"])["median_s"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, "small sizes, seconds; no target judged", RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result: dict[str, Any] = {"benchmark": "reliability", "quick": args.quick, "conditions": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        result["shards"] = shard_guards(Path(tmp) / "shards", 200_000 if args.quick else 6_000_000)
        result["checkpoints"] = {  # keyed by model, so that SUMMARY.md lists every figure
            name.split(".")[0]: checkpoint_guards(name, Path(tmp), 2 if args.quick else (40 if name == "ebert_tiny.yaml" else 12))
            for name in (("ebert_tiny.yaml",) if args.quick else ("ebert_tiny.yaml", "ebert_base.yaml"))}
    shards = result["shards"]
    shard_cost = shards["read_back_fraction_of_build"] + shards["lock_fraction_of_one_shard_build"]
    save_cost = max(c["save_wall_over_plain"]["median"] for c in result["checkpoints"].values())
    judge = None if args.quick else True
    result["targets"] = {
        "shard_guards": target("read-back + lock < 2% of a shard build", shard_cost,
                               None if judge is None else shard_cost < 0.02),
        "checkpoint_checksum": target("a save with its checksum file takes < 2% more wall time than one without "
                                      "(torch.save's defaults; median of paired rounds, largest over the models)",
                                      save_cost, None if judge is None else save_cost < 0.02),
    }
    write_json(args.out, result)
    print(f"shard read-back {shards['read_back_fraction_of_build']:.2%}, checksum {shards['checksum_fraction_of_build']:.2%}, "
          f"lock {shards['lock_fraction_of_one_shard_build']:.3%} of a shard build; checkpoint checksum: "
          + ", ".join(f"{c['params']}: a save with it {c['save_wall_over_plain']['median']:+.1%} wall "
                      f"({c['save_wall_over_plain_without_crc32']['median']:+.1%} against a save without torch's CRC-32s), "
                      f"the hash {c['checksum_cpu_fraction_of_save']:.2%} of its CPU; verified load "
                      f"{c['verification_cpu_fraction_of_load']:+.1%} CPU" for c in result["checkpoints"].values()))


if __name__ == "__main__":
    main()
