"""Samples/s of the pre-training processor for ONE worker at sequence length 512, next to the
samples/s the model consumes.

Data: written by the real preprocessing pipeline (bench/sim_inputs.py: real GRCh37 chrX DNA,
simulated seeded epigenome): 500 bp windows, k = 1, 50 bp bins (10 bins x 50 tokens + [CLS]/[SEP],
padded to 512), 15 chromatin states, 4 signal tracks, 4 cell types. Processor: batch 256, dynamic
masking (80 token predictions, state masking on).

Measured in one run:
- the dataset iterated in this process (the exact code a DataLoader worker runs), interleaved round
  by round with a training step of an ebert_tiny-class model and of a base-like model at the same
  sequence length (fused AdamW, float32, this machine's CPU, one thread by default), so their
  ratio is side by side;
  model samples/s = model batch / step time;
- the same through a DataLoader with num_workers=1 (adds the worker-to-main transfer), the figure
  the targets are judged on;
- a cProfile of the in-process run (where the time goes).

Without smalt-examples (the DNA) the JSON says so and holds no figure. Writes
bench/results/data_processor.json.

    PYTHONPATH=. python bench/bench_data_processor.py [--windows 16384] [--threads 1]
    PYTHONPATH=. python bench/bench_data_processor.py --quick     # seconds (what tests run)
"""
from __future__ import annotations

import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from bench import sim_inputs
from bench.bench_training import Shape, _optimizer, _train_fn, ebert_config, make_batches
from bench.common import bench_parser, interleaved, machine, summarize, target, write_json
from ebert_modelzoo.data.processors import EBertPretrainingDataProcessor
from ebert_modelzoo.models.ebert import EBertForPreTrainingModel
from ebert_modelzoo.preprocessing.config import load_config
from ebert_modelzoo.preprocessing.pipeline import make_plan, run

RESULTS = Path(__file__).parent / "results" / "data_processor.json"
WINDOW, BIN_SIZE, BATCH, SEQ_LEN, PREDICTIONS = 500, 50, 256, 512, 80
ASSAYS = ("DNase", "H3K27ac", "H3K4me3", "CTCF")
CELLS = 4
MIN_SAMPLES_PER_S, MIN_RATIO = 20_000, 5.0


def model_shapes(batch: int) -> dict[str, Shape]:
    """The consumers at sequence 512 (10 bins x 50 tokens, 80 masked): ebert_tiny's widths
    (params/ebert_tiny.yaml) and BERT-base widths at 2 layers (bench_training's base_like)."""
    return {
        "ebert_tiny_class": Shape("ebert_tiny_class", 64, 2, 2, 256, SEQ_LEN, batch, 50, 10, PREDICTIONS),
        "base_like": Shape("base_like", 768, 2, 12, 3072, SEQ_LEN, batch, 50, 10, PREDICTIONS),
    }


def build_data(tmp: Path, windows: int) -> Path:
    """The train split written by the preprocessing pipeline over ``windows`` windows of chrX."""
    length = windows * WINDOW
    fasta = sim_inputs.write_fasta(tmp / "genome.fa", sim_inputs.read_dna(sim_inputs.START, length))
    manifest = sim_inputs.write_epigenome(tmp, length, CELLS, ASSAYS, np.random.default_rng(0))
    cfg = sim_inputs.write_config(tmp / "cfg.yaml", fasta, manifest, [sim_inputs.CONTIG], tmp / "data",
                                  WINDOW, BIN_SIZE, k=1, windows_per_shard=max(1, windows // 2))
    run(make_plan(load_config(cfg, "pretraining"), "pretraining"), workers=1, progress=False)
    return tmp / "data" / "train"


def _processor(data_dir: Path, num_workers: int) -> EBertPretrainingDataProcessor:
    return EBertPretrainingDataProcessor(dict(
        data_processor="EBertPretrainingDataProcessor", data_dir=str(data_dir), batch_size=BATCH,
        max_sequence_length=SEQ_LEN, max_predictions_per_seq=PREDICTIONS, state_mask_rate=0.15,
        max_state_predictions=3, use_cell_type=True, num_workers=num_workers, shuffle_seed=0,
    ))


def _endless(batches: Iterable) -> Iterator:
    while True:
        yield from batches


def _samples_per_s(batches: Iterable, n: int) -> float:
    """Samples/s over ``n`` batches after one warm-up batch."""
    iterator = _endless(batches)
    next(iterator)
    start = time.perf_counter()
    samples = sum(len(next(iterator)["input_ids"]) for _ in range(n))
    return samples / (time.perf_counter() - start)


def _model_step(shape: Shape) -> Callable[[], None]:
    batch, _ = make_batches(shape)
    torch.manual_seed(0)
    model = EBertForPreTrainingModel(ebert_config(shape))
    return _train_fn(model, lambda: model(batch), _optimizer(model, torch.device("cpu")), torch.device("cpu"), None)


def _profile(data_dir: Path, batches: int) -> list[dict[str, Any]]:
    profiler = cProfile.Profile()
    dataset = _processor(data_dir, 0).dataset()
    profiler.enable()
    _samples_per_s(dataset, batches)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = sum(row[2] for row in stats.stats.values())
    top = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:12]
    return [{"function": f"{Path(file).name}:{line}({name})", "self_s": round(tt, 4), "share": round(tt / total, 3)}
            for (file, line, name), (_, _, tt, _, _) in top]


def measure(data_dir: Path, batches: int, repeats: int, model_batch: int) -> dict[str, Any]:
    """Processor and model figures of one run (see the module docstring)."""
    chunk = max(1, batches // repeats)  # processor batches per interleaved round
    iterator = _endless(_processor(data_dir, 0).dataset())
    steps = {name: _model_step(shape) for name, shape in model_shapes(model_batch).items()}
    cases = {"processor": lambda: [next(iterator) for _ in range(chunk)], **steps}
    times = interleaved(cases, repeats)
    in_process = BATCH * chunk / summarize(times["processor"])["median_s"]
    one_worker = _samples_per_s(_processor(data_dir, 1).create_dataloader(), batches)
    models = {}
    for name, shape in model_shapes(model_batch).items():
        stats = summarize(times[name])
        consumed = model_batch / stats["median_s"]
        models[name] = {"hidden": shape.hidden, "layers": shape.layers, "heads": shape.heads,
                        "filter_size": shape.filter_size, "batch": model_batch, "step": stats,
                        "samples_per_s": round(consumed, 2),
                        "ratio_in_process_over_model": round(in_process / consumed, 1),
                        "ratio_one_worker_over_model": round(one_worker / consumed, 1)}
    return {
        "samples_per_s_in_process": round(in_process),
        "in_process_interleaved": {"batches_per_round": chunk, **summarize(times["processor"])},
        "samples_per_s_one_worker_dataloader": round(one_worker),
        "models": models,
        "profile_top_self_time": _profile(data_dir, batches),
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, "512 windows, 2 batches, 1 round, model batch 1", RESULTS)
    parser.add_argument("--windows", type=int, default=16384, help="windows written by the pipeline (2 shards)")
    parser.add_argument("--batches", type=int, default=40, help="timed processor batches per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (processor vs model steps)")
    parser.add_argument("--model-batch", type=int, default=8, help="batch of the timed training steps")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the model steps (1: on a shared machine a descheduled thread stalls the rest)")
    parser.add_argument("--source", type=Path, default=sim_inputs.SOURCE, help="the chrX FASTA (gzip)")
    args = parser.parse_args(argv)
    if args.quick:
        args.windows, args.batches, args.repeats, args.model_batch = 512, 2, 1, 1
    torch.set_num_threads(args.threads)
    sim_inputs.SOURCE = args.source
    result: dict[str, Any] = {
        "benchmark": "data_processor", "quick": args.quick,
        "conditions": {**machine(), "processor_workers": 1, "model_threads": torch.get_num_threads(),
                       "model_dtype": "float32", "model_optimizer": "AdamW fused"},
        "setup": {"sequence_length": SEQ_LEN, "tokens": WINDOW, "tokens_per_bin": BIN_SIZE, "batch_size": BATCH,
                  "max_predictions_per_seq": PREDICTIONS, "chromatin_states": 15, "state_masking": True,
                  "signal_tracks": len(ASSAYS), "cell_types": CELLS, "windows_requested": args.windows,
                  "data": "written by the preprocessing pipeline (chrX DNA, simulated epigenome)"},
    }
    missing = sim_inputs.missing_source()
    if missing:
        result["available"], result["reason"] = False, missing
    else:
        result["available"] = True
        with tempfile.TemporaryDirectory() as tmp:
            result.update(measure(build_data(Path(tmp), args.windows), args.batches, args.repeats, args.model_batch))
    one_worker = result.get("samples_per_s_one_worker_dataloader")
    judged = not args.quick and one_worker is not None
    result["targets"] = {"one_worker_samples_per_s": target(
        f">= {MIN_SAMPLES_PER_S:,}", one_worker, (one_worker >= MIN_SAMPLES_PER_S) if judged else None)}
    for name, model in result.get("models", {}).items():
        ratio = model["ratio_one_worker_over_model"]
        result["targets"][f"one_worker_over_{name}"] = target(f">= {MIN_RATIO:g}x", ratio,
                                                              ratio >= MIN_RATIO if judged else None)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
