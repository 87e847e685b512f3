"""Samples/s of the pre-training processor for ONE worker at sequence length 512.

Setup (the issue's reference point): windows of 500 bp, k = 1, bins of 50 bp (10 bins x 50 tokens
+ [CLS]/[SEP], padded to 512), 15 chromatin states with state masking, 4 signal tracks, batch 256,
dynamic masking. Measured twice: the dataset iterated in this process (the exact code a worker
runs), and through a DataLoader with num_workers=1 (adds the worker-to-main transfer). A cProfile
of the in-process run says where the time goes. Writes bench/results/data_processor.json.

    PYTHONPATH=. python bench/bench_data_processor.py [--windows 8192] [--compression gzip]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import tempfile
import time
from pathlib import Path

import torch

from ebert_modelzoo.data.processors import EBertPretrainingDataProcessor
from tests.data_processors.split_builder import build_split  # until the shard writer lands on main

RESULTS = Path(__file__).parent / "results" / "data_processor.json"


def _processor(data_dir: Path, num_workers: int) -> EBertPretrainingDataProcessor:
    return EBertPretrainingDataProcessor(
        dict(
            data_processor="EBertPretrainingDataProcessor",
            data_dir=str(data_dir),
            batch_size=256,
            max_sequence_length=512,
            max_predictions_per_seq=80,
            state_mask_rate=0.15,
            max_state_predictions=3,
            use_cell_type=True,
            num_workers=num_workers,
        )
    )


def _time(batches, n: int) -> float:
    """Samples/s over ``n`` batches after one warm-up batch."""
    iterator = iter(batches)
    next(iterator)
    start = time.perf_counter()
    samples = sum(len(next(iterator)["input_ids"]) for _ in range(n))
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=8192, help="windows per shard (2 shards, 4 cell types)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    parser.add_argument("--compression", default=None, help="h5py compression of the bench shards (e.g. gzip)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "train"
        build_split(
            data_dir, shard_windows=(args.windows, args.windows), cell_types=("c1", "c2", "c3", "c4"),
            k=1, tokens_per_bin=50, num_bins=10, num_states=15, tracks=("DNase", "H3K27ac", "H3K4me3", "CTCF"),
            compression=args.compression,
        )
        in_process = _time(_processor(data_dir, 0).dataset(), args.batches)
        one_worker = _time(_processor(data_dir, 1).create_dataloader(), args.batches)
        profiler = cProfile.Profile()
        dataset = _processor(data_dir, 0).dataset()
        profiler.enable()
        _time(dataset, args.batches)
        profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).sort_stats("tottime")
    total = sum(row[2] for row in stats.stats.values())
    top = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:12]
    profile = [
        {"function": f"{Path(file).name}:{line}({name})", "self_s": round(tt, 4), "share": round(tt / total, 3)}
        for (file, line, name), (_, _, tt, _, _) in top
    ]
    result = {
        "setup": {"sequence_length": 512, "tokens": 500, "tokens_per_bin": 50, "batch_size": 256,
                  "max_predictions_per_seq": 80, "chromatin_states": 15, "state_masking": True,
                  "signal_tracks": 4, "windows": 2 * args.windows, "cell_types": 4,
                  "compression": args.compression},
        "samples_per_s_in_process": round(in_process),
        "samples_per_s_one_worker_dataloader": round(one_worker),
        "target_samples_per_s": 20000,
        "profile_top_self_time": profile,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "profile_top_self_time"}, indent=1))
    for row in profile:
        print(f"  {row['share']:6.1%}  {row['function']}")


if __name__ == "__main__":
    main()
