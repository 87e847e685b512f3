"""Interpretation speed: variant effects per second per cell type and ISM windows per second,
batched (``ebert_modelzoo.interpret``) vs a naive loop of one variant (or mutant) per forward
pass, in the same run, for an ebert_tiny-shaped and a base-like fine-tuned model.

Models are freshly initialised (speed does not depend on the weights) and saved as a run's
checkpoint; the split is ebert_finetune_tiny's shape (1 kb windows of 4-mers, 5 bins x 50 tokens,
15 chromatin states, 4 signal tracks, 4 labels, 2 cell types) written by the tests' split
builder. Variants: one SNV in each of V distinct windows (the case with no reference shared
between variants: two forward passes per variant and cell type), scored in one cell type.
Also the same number of variants 8 to a window (one reference per 8 variants).
Naive: for each variant, the reference window and the alternative window each in its own
forward pass. ISM: every position of a window to each other base (3,000 mutants; the base-like model times
20 positions and scales); the naive ISM time per window is extrapolated from timing a few
single-mutant passes.
Batched paths use the scorer's batch size (on the CPU sized to the model: 64 samples a pass for
ebert_tiny, 5 for the base-like one); ebert_tiny's variants are also timed at 256 a pass (the
earlier default) in the same rounds. Every case is timed in wall seconds and in process CPU
seconds (all threads), interleaved round by round; the load average before and after is
recorded: on the shared machine wall figures depend on the other jobs, CPU seconds much less.
Target (issue 13): ebert_tiny >= 500 variants/s per cell type on the 2-core CPU.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import bench_parser, interleaved_clocks, machine, summarize, synchronizer, target, write_json  # noqa: E402
from ebert_modelzoo.config.params import load_params  # noqa: E402
from ebert_modelzoo.interpret.attribution import ism  # noqa: E402
from ebert_modelzoo.interpret.scoring import Scorer, samples_for  # noqa: E402
from ebert_modelzoo.interpret.variants import Variant, score_variants  # noqa: E402
from ebert_modelzoo.models.ebert import EBertForFineTuningModel  # noqa: E402
from tests.data.split_builder import build_split  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "interpret.json"
TINY_TARGET = 500.0
LABELS = ("CTCF", "NRF1", "JUND", "REST")
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_heads": 2, "filter_size": 256}
BASE_LIKE = {"hidden_size": 768, "num_hidden_layers": 2, "num_heads": 12, "filter_size": 3072}


def make_run(root: Path, name: str, shape: dict[str, int], data_dir: Path, batch: int) -> Path:
    """A params file like ebert_finetune_tiny.yaml with ``shape``, and a checkpoint of a fresh model."""
    params = yaml.safe_load((ROOT / "params" / "ebert_finetune_tiny.yaml").read_text())
    init = params["trainer"]["init"]
    init["model"].update(shape)
    init["model_dir"] = str(root / name)
    params["trainer"]["fit"].pop("ckpt_path", None)
    for loader in (params["trainer"]["fit"]["train_dataloader"], params["trainer"]["fit"]["val_dataloader"]):
        loader.update(data_dir=str(data_dir), cell_types=None, batch_size=batch)
    params.pop("validate", None)
    params["trainer"].pop("validate", None)
    params["trainer"].pop("validate_all", None)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    torch.manual_seed(0)
    model = EBertForFineTuningModel(load_params(path).trainer.init.model)
    (root / name).mkdir()
    torch.save({"model": model.state_dict(), "step": 0}, root / name / "checkpoint_0.mdl")
    return path


def measure(scorer: Scorer, variants: int, naive_variants: int, naive_mutants: int, ism_positions: int,
            repeats: int, compare_256: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    windows = rng.choice(scorer.num_windows, variants, replace=False)
    offsets = rng.integers(0, scorer.sequence_length, variants)
    codes = scorer.codes(windows)
    found = [Variant("chrTest", 0, f"v{i}", "ACGTN"[codes[i, o]], "ACGT"[(min(codes[i, o], 3) + 1) % 4], int(w), int(o))
             for i, (w, o) in enumerate(zip(windows, offsets))]
    # the same number of variants, 8 to a window (fine-mapped sets, saturation screens): references shared
    dense = [Variant(v.chrom, v.pos, v.id, "ACGTN"[codes[i // 8 * 8, v.offset]],
                     "ACGT"[(min(codes[i // 8 * 8, v.offset], 3) + 1) % 4], int(windows[i // 8 * 8]), v.offset)
             for i, v in enumerate(found)]
    cell = 0

    def batched() -> None:
        score_variants(scorer, found, [cell], progress=False)

    def batched_dense() -> None:
        score_variants(scorer, dense, [cell], progress=False)

    def naive() -> None:
        for v in found[:naive_variants]:
            scorer.logits(samples_for([v.window], cell))
            alt = scorer.codes(np.array([v.window]))
            alt[0, v.offset] = "ACGT".index(v.alt)
            scorer.logits(samples_for([v.window], cell, codes=alt))

    def ism_batched() -> None:
        ism(scorer, [int(windows[0])], cell, 0, positions=np.arange(ism_positions), progress=False)

    def ism_naive() -> None:
        base = scorer.codes(windows[:1])
        for j in range(naive_mutants):
            mutant = base.copy()
            mutant[0, j // 3] = (base[0, j // 3] + 1 + j % 3) % 4
            scorer.logits(samples_for(windows[:1], cell, codes=mutant))

    def batched_256() -> None:  # the batch size used before the CPU default was sized to the model
        size, scorer.batch_size = scorer.batch_size, 256
        try:
            score_variants(scorer, found, [cell], progress=False)
        finally:
            scorer.batch_size = size

    cases = {"variants_batched": batched, "variants_batched_8_per_window": batched_dense,
             "variants_naive": naive, "ism_batched": ism_batched, "ism_naive": ism_naive}
    if compare_256 and scorer.batch_size != 256:
        cases["variants_batched_256"] = batched_256
    load = os.getloadavg()[0]
    wall, cpu = interleaved_clocks(cases, repeats=repeats, warmup=1, sync=synchronizer(scorer.device))
    mutants_per_window = 3 * scorer.sequence_length
    out: dict[str, Any] = {"batch_size": scorer.batch_size, "load_average_1min_before": load,
                           "load_average_1min_after": os.getloadavg()[0],
                           "timings": {name: summarize(values) for name, values in wall.items()},
                           "cpu_timings": {name: summarize(values) for name, values in cpu.items()}}
    for clock, times in (("", wall), ("_per_cpu_s", cpu)):
        med = {name: float(np.median(values)) for name, values in times.items()}
        out[f"variants_per_s_per_cell_type{clock}"] = variants / med["variants_batched"]
        out[f"variants_per_s_per_cell_type_8_per_window{clock}"] = variants / med["variants_batched_8_per_window"]
        out[f"naive_variants_per_s_per_cell_type{clock}"] = naive_variants / med["variants_naive"]
        if "variants_batched_256" in med:
            out[f"variants_per_s_per_cell_type_batch_256{clock}"] = variants / med["variants_batched_256"]
        out[f"ism_windows_per_s{clock}"] = ism_positions / scorer.sequence_length / med["ism_batched"]
        out[f"naive_ism_windows_per_s_extrapolated{clock}"] = naive_mutants / med["ism_naive"] / mutants_per_window
        out[f"variants_speedup{clock}"] = (out[f"variants_per_s_per_cell_type{clock}"]
                                          / out[f"naive_variants_per_s_per_cell_type{clock}"])
        out[f"ism_speedup{clock}"] = out[f"ism_windows_per_s{clock}"] / out[f"naive_ism_windows_per_s_extrapolated{clock}"]
    out.update(ism_positions_timed=ism_positions, mutants_per_window=mutants_per_window)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, "tiny model only, 64 variants, ISM of 100 positions, 1 round", RESULTS)
    parser.add_argument("--variants", type=int, default=1024, help="ebert_tiny: variants per batched measurement")
    parser.add_argument("--naive-variants", type=int, default=32, help="ebert_tiny: variants per naive measurement")
    parser.add_argument("--naive-mutants", type=int, default=48, help="ebert_tiny: single-mutant passes per naive ISM")
    parser.add_argument("--batch", type=int, default=None,
                        help="samples per forward pass (batched paths); default the scorer's (sized to the model on CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    # (shape, variants, naive variants, naive mutants, ISM positions timed): the base-like model is
    # ~40x the tiny one's FLOPs, so it times fewer (windows/s scale from the positions timed)
    shapes = {"ebert_tiny": (TINY, args.variants, args.naive_variants, args.naive_mutants, 1000),
              "base_like_h768_2layers": (BASE_LIKE, 64, 4, 6, 20)}
    if args.quick:
        args.repeats = 1
        shapes = {"ebert_tiny": (TINY, 64, 4, 6, 100)}
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "benchmark": "interpret", "quick": args.quick,
        "conditions": {**machine(), "batch": args.batch or "scorer default", "dtype": "float32",
                       "device": args.device, "clocks": "wall and process CPU seconds (all threads), interleaved"},
        "setup": {"window_bp": 1000, "tokenizer_k": 4, "sequence_length": 256, "states": 15, "tracks": 4,
                  "labels": len(LABELS), "variant_layout": "one SNV per distinct window (and 8 per window)",
                  "per_model": {name: dict(zip(("variants", "naive_variants", "naive_mutants", "ism_positions"),
                                               entry[1:])) for name, entry in shapes.items()}},
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data_dir = root / "split"
        build_split(data_dir, shard_windows=(max(args.variants, 64),), cell_types=("cell_a", "cell_b"), k=4,
                    tokens_per_bin=50, num_bins=5, num_states=15, tracks=("DNase", "H3K27ac", "H3K4me3", "H3K27me3"),
                    labels=LABELS, n_fraction=0.0)
        for name, (shape, variants, naive_variants, naive_mutants, positions) in shapes.items():
            scorer = Scorer(make_run(root, name, shape, data_dir, args.batch or 256), batch_size=args.batch,
                            device=args.device)
            try:
                result["models"][name] = {"shape": shape, "variants": variants, **measure(
                    scorer, variants, naive_variants, naive_mutants, positions, args.repeats,
                    compare_256=name == "ebert_tiny")}
            finally:
                scorer.close()
            entry = result["models"][name]
            print(f"{name}: {entry['variants_per_s_per_cell_type']:.0f} variants/s wall, "
                  f"{entry['variants_per_s_per_cell_type_per_cpu_s']:.0f} per CPU-second (naive "
                  f"{entry['naive_variants_per_s_per_cell_type']:.1f}/s), {entry['ism_windows_per_s']:.3f} ISM windows/s",
                  flush=True)
    tiny = result["models"]["ebert_tiny"]["variants_per_s_per_cell_type"]
    result["targets"] = {"ebert_tiny_variants_per_s_per_cell_type": target(
        f">= {TINY_TARGET:g}", tiny, None if args.quick or args.device != "cpu" else tiny >= TINY_TARGET)}
    result["targets"]["ebert_tiny_variants_per_cpu_s_per_cell_type"] = target(
        "none stated (per CPU-second of this process's threads; the other jobs change it less than wall time)",
        result["models"]["ebert_tiny"]["variants_per_s_per_cell_type_per_cpu_s"], None)
    for name, entry in result["models"].items():
        result["targets"][f"{name}_variants_batched_over_naive"] = target("none stated", entry["variants_speedup"], None)
        result["targets"][f"{name}_ism_batched_over_naive"] = target("none stated", entry["ism_speedup"], None)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
