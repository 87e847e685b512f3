"""What the reliability guards cost, next to the work they guard, measured in one run.

- Shards: the real pipeline (in process, one worker) builds a dataset from a seeded random genome
  and simulated epigenome (bench/sim_inputs.py: 2 cell types x 15 states + 2 bigWig tracks, 1 kb
  windows, 200 bp bins, k = 1, 2,048 windows a shard, gzip). The guards' time is taken inside
  that build: reading each shard back before it is recorded (datasets and shapes) and hashing it
  (its sha256 for the sidecar), against the time of building the shards. Target: < 2% of a shard
  build for the read-back plus the lock (the hash is the record's checksum, also reported).
- Folder lock: acquiring and releasing ``folder_lock`` (median of many), against the same build.
- Checkpoints: for ebert_tiny and a BERT-base-sized EBERT (params/ebert_base.yaml, after one
  AdamW step so the optimizer state is full), in process CPU seconds (the machine is shared: wall
  times of fsyncs vary far more than the guards cost; wall times are recorded too), rounds
  rotated so no step always follows another: a save with its checksum file (``atomic_torch_save``:
  xxh3-128 of the bytes as torch.save streams them) and the same save without one (``atomic_path``
  + torch.save); the cstorch backend's route (``checkpoint_file``: the finished file hashed from
  the page cache while it is fsynced); the checksum's own cost, xxh3-128 of the file's bytes in
  memory, and sha256 of the file (what the checksum cost before); the finiteness check of the weights; and reading
  it (``torch_load``) against reading it while it is verified on a thread (``read_verified``).
  Target: the checksum's CPU < 2% of a save's CPU (medians; the save's is the lower of the
  checksummed and the plain save's, which differ by more than the checksum under memory
  pressure); the difference of whole saves (median of paired rounds) is reported beside it.

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
import xxhash

from bench import sim_inputs
from bench.common import bench_parser, machine, summarize, target, write_json
from ebert_modelzoo.atomic import atomic_path
from ebert_modelzoo.config.params import load_params
from ebert_modelzoo.folder_lock import folder_lock
from ebert_modelzoo.preprocessing import pipeline, writer
from ebert_modelzoo.preprocessing.config import load_config
from ebert_modelzoo.training.checkpoint import atomic_torch_save, checkpoint_file, file_digest, read_verified, torch_load
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
    by_path = folder / "checkpoint_by_path.mdl"

    def plain_save() -> None:
        with atomic_path(plain) as tmp, open(tmp, "wb") as handle:
            torch.save(state, handle)

    def path_writer_save() -> None:  # the cstorch backend's route: the finished file hashed from the page cache
        with checkpoint_file(by_path) as tmp:
            torch.save(state, tmp)

    def sha256_of_file() -> None:  # what the checksum cost before (sha256 of the finished file)
        file_digest(path, ".sha256")

    atomic_torch_save(state, path)
    content = path.read_bytes()  # what the stream hashes as torch.save writes it: hashing these bytes is its cost
    work = {"plain_save": plain_save, "save": lambda: atomic_torch_save(state, path),
            "path_writer_save": path_writer_save, "xxh128_of_bytes": lambda: xxhash.xxh3_128(content).hexdigest(),
            "sha256_of_file": sha256_of_file,
            "finite_check": lambda: _check_finite(state["model"], 0, folder),
            "verified_load": lambda: read_verified(path, torch_load), "load": lambda: torch_load(path)}
    cpu: dict[str, list[float]] = {k: [] for k in work}
    wall: dict[str, list[float]] = {k: [] for k in work}
    names = list(work)
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:  # rotated: no fixed order
            c, w = _clocks(work[name])
            cpu[name].append(c)
            wall[name].append(w)
    med = {name: float(np.median(v)) for name, v in cpu.items()}
    paired = [s - p for s, p in zip(cpu["save"], cpu["plain_save"])]
    # a save's CPU: the cheaper of the two medians, so that a noisy plain save (page-cache reclaim
    # under memory pressure is charged to the writer) cannot flatter the fractions
    save_cpu = min(med["plain_save"], med["save"])
    save_wall = min(summarize(wall["plain_save"])["median_s"], summarize(wall["save"])["median_s"])
    return {
        "params": params_file, "parameters": sum(p.numel() for p in model.parameters()),
        "file_mb": path.stat().st_size / 2**20, "repeats": repeats,
        "cpu_seconds": {name: summarize(values) for name, values in cpu.items()},
        "wall_seconds": {name: summarize(values) for name, values in wall.items()},
        # the checksum's own CPU cost: hashing the file's bytes (xxh3-128, in memory) over a save's CPU;
        # in the save the bytes are hashed as they stream, so this is what the save adds
        "checksum_cpu_fraction_of_save": med["xxh128_of_bytes"] / save_cpu,
        "checksum_wall_fraction_of_save": summarize(wall["xxh128_of_bytes"])["median_s"] / save_wall,
        # the same seen as the difference of whole saves (median of paired rounds; fsync noise included)
        "checksummed_minus_plain_save_cpu_fraction": float(np.median(paired)) / med["plain_save"],
        "path_writer_minus_plain_save_cpu_fraction": (med["path_writer_save"] - med["plain_save"]) / med["plain_save"],
        "sha256_cpu_fraction_of_save_before": med["sha256_of_file"] / save_cpu,
        "finite_check_cpu_fraction_of_save": med["finite_check"] / save_cpu,
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
        result["checkpoints"] = [checkpoint_guards(name, Path(tmp), 2 if args.quick else (20 if name == "ebert_tiny.yaml" else 5))
                                 for name in (("ebert_tiny.yaml",) if args.quick else ("ebert_tiny.yaml", "ebert_base.yaml"))]
    shards = result["shards"]
    shard_cost = shards["read_back_fraction_of_build"] + shards["lock_fraction_of_one_shard_build"]
    save_cost = max(c["checksum_cpu_fraction_of_save"] for c in result["checkpoints"])
    judge = None if args.quick else True
    result["targets"] = {
        "shard_guards": target("read-back + lock < 2% of a shard build", shard_cost,
                               None if judge is None else shard_cost < 0.02),
        "checkpoint_checksum": target("checksum CPU < 2% of a save's CPU (largest over the models)", save_cost,
                                    None if judge is None else save_cost < 0.02),
    }
    write_json(args.out, result)
    print(f"shard read-back {shards['read_back_fraction_of_build']:.2%}, checksum {shards['checksum_fraction_of_build']:.2%}, "
          f"lock {shards['lock_fraction_of_one_shard_build']:.3%} of a shard build; checkpoint checksum (CPU) "
          + ", ".join(f"{c['params']} {c['checksum_cpu_fraction_of_save']:.2%} of a save (whole saves differ by "
                      f"{c['checksummed_minus_plain_save_cpu_fraction']:+.2%}; sha256 was "
                      f"{c['sha256_cpu_fraction_of_save_before']:.1%}), verified load {c['verification_cpu_fraction_of_load']:+.1%} CPU"
                      for c in result["checkpoints"]))


if __name__ == "__main__":
    main()
