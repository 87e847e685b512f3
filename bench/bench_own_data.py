"""Own labelled data: sequence tables and BED regions to shards (sequences/s) against a
straightforward per-row reference in the same run, predictions written per second, and peak
memory of the sequence CLI on a small vs a 10x larger table.

    PYTHONPATH=. python bench/bench_own_data.py            # 100k-row table, 5k regions, 200k predictions
    PYTHONPATH=. python bench/bench_own_data.py --quick    # seconds (what the tests run)

Inputs are seeded random DNA (the figures do not depend on the sequence) and, for regions, the
simulated epigenome of bench/sim_inputs.py (2 cell types x 15 states + 2 tracks).

- Tables: CSV ``id,sequence,a,b`` of 200 bp rows. Pipeline: sequence_data.build (blocks of 4,096
  rows located field by field in one vectorised pass, one vectorised tokenisation per block,
  shards of 2,048). Reference (``table_reference``): straightforward per row, parse, check,
  tokenise k-mer by k-mer and write each row into the shard's HDF5 datasets; a second one parses
  the same way and writes each shard at once through the pipeline's writer. Both are checked to
  write the pipeline's shard content before timing; wall and CPU seconds.
- Regions: 1 kb windows centred on BED regions on a 10 Mb contig. Pipeline: the genome pipeline
  with ``regions`` (one worker). Reference: per region, the window fetched with pyfaidx, tokenised
  k-mer by k-mer, pyBigWig ``stats`` per bin and track, the state by bisection per bin.
- Predictions: a split of N genome windows, 1 cell type x 4 labels. Pipeline: prediction_files
  (.tsv and .bw: coordinates read from the shards, probabilities, files written).
- Memory: peak RSS (wait4) of create_sequence_data.py on a table and on one 10x as long.

Writes bench/results/own_data.json.
"""
from __future__ import annotations

import bisect
import csv
import hashlib
import os
import sys
import tempfile
from itertools import product
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyBigWig
import pyfaidx

from bench import sim_inputs
from bench.common import bench_parser, interleaved, interleaved_clocks, machine, run_measured, summarize, target, write_json
from ebert_modelzoo.contract import schema
from ebert_modelzoo.contract.data_params import load_data_params
from ebert_modelzoo.evaluation.prediction_files import write_predictions
from ebert_modelzoo.evaluation.sample_scores import SampleScores
from ebert_modelzoo.preprocessing.config import OutputConfig, SequenceDataConfig, load_config
from ebert_modelzoo.preprocessing.pipeline import make_plan, run
from ebert_modelzoo.preprocessing.sequence_data import DATASET_ROW_ID, DATASET_SEQUENCE_LENGTH, build
from ebert_modelzoo.preprocessing.writer import atomic_write_json, write_shard

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "own_data.json"
CLI = ROOT / "data_processing" / "create_sequence_data.py"
SPEEDUP_TARGET = 10
ROW_BP, WINDOW, K, SHARD = 200, 1000, 4, 2048  # tables: the window is the default (the longest row, 200)
ASSAYS = ("DNase", "H3K27ac")


def random_dna(rng: np.random.Generator, n: int) -> str:
    return "".join(np.asarray(list("ACGT"))[rng.integers(0, 4, n)])


def write_table(path: Path, rows: int, rng: np.random.Generator) -> Path:
    dna = random_dna(rng, rows * ROW_BP)
    labels = rng.integers(0, 2, (rows, 2))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "sequence", "a", "b"])
        w.writerows([f"r{i}", dna[i * ROW_BP:(i + 1) * ROW_BP], labels[i, 0], labels[i, 1]] for i in range(rows))
    return path


_REF_LABELS = {"1": 1, "1.0": 1, "true": 1, "True": 1, "0": 0, "0.0": 0, "false": 0, "False": 0,
               "-1": -1, "": -1, "NA": -1, "nan": -1, "NaN": -1}
_REF_AMBIGUOUS = set("RYSWKMBDHVN")


def _reference_row(row: dict[str, str], labels: list[str], window: int, vocab: dict[str, int]) -> tuple[list[int], list[int], str]:
    """One row as one writes it without thinking about speed: check each base, centre the
    sequence, look each k-mer up, parse each label."""
    seq = row["sequence"].strip().upper()
    for position, base in enumerate(seq):
        if base not in "ACGT" and base not in _REF_AMBIGUOUS:
            raise ValueError(f"invalid DNA character {base!r} at position {position}")
    if not seq or len(seq) > window:
        raise ValueError(f"sequence of {len(seq)} bp does not fit the window ({window} bp)")
    left = (window - len(seq)) // 2 // K * K
    padded = "." * left + seq + "." * (window - left - len(seq))
    tokens = []
    for i in range(0, window, K):
        kmer = padded[i:i + K]
        if kmer == "." * K:
            tokens.append(0)  # [PAD]
        elif "." in kmer:
            tokens.append(5)  # [N]: bases and padding
        else:
            tokens.append(vocab.get(kmer, 5))  # [N]: an ambiguity code
    return tokens, [_REF_LABELS[row[name].strip()] for name in labels], seq


def table_reference(path: Path, out: Path, bin_size: int, write_rows: bool = True) -> int:
    """The straightforward per-row build of the same shards (same datasets, values, chunks and
    compression as sequence_data.build's defaults): a first pass over the rows for the longest
    sequence (the window), then per row: csv.DictReader, each base checked, k-mer by k-mer
    tokenisation with a dict, labels parsed one by one, and the row written into the shard's
    HDF5 datasets (``write_rows``; False: rows collected and each shard written at once by the
    pipeline's writer, a reference that batches the writes). Each shard is written under a
    temporary name, hashed and renamed."""
    vocab = {"".join(p): 6 + i for i, p in enumerate(product("ACGT", repeat=K))}
    out.mkdir(parents=True, exist_ok=True)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))  # a list of rows: the simple way
    longest = max(len(row["sequence"].strip()) for row in rows)
    window = max(bin_size, -(-longest // bin_size) * bin_size)
    labels = [c for c in rows[0] if c not in ("id", "sequence")]
    out_defaults = OutputConfig()
    size, chunk = out_defaults.windows_per_shard, out_defaults.chunk_windows
    shards = 0
    for first in range(0, len(rows), size):
        part = rows[first:first + size]
        n = len(part)
        done = [_reference_row(row, labels, window, vocab) for row in part] if not write_rows else None
        if done is not None:
            arrays = {schema.DATASET_WINDOW_CHROM: np.zeros(n, np.int32),
                      schema.DATASET_WINDOW_START: np.arange(first, first + n, dtype=np.int64),
                      schema.DATASET_TOKENS: np.array([t for t, _, _ in done], np.uint16),
                      schema.DATASET_LABELS: np.array([[lab for _, lab, _ in done]], np.int8),
                      DATASET_SEQUENCE_LENGTH: np.array([len(q) for _, _, q in done], np.int32),
                      DATASET_ROW_ID: np.array([row["id"].encode() for row in part])}
            write_shard(out, shards, arrays, {k: (1 if k == schema.DATASET_LABELS else 0) for k in arrays},
                        out_defaults.compression, chunk)
            shards += 1
            continue
        final = out / schema.SHARD_PATTERN.format(index=shards)
        tmp = out / f".{final.name}.tmp"
        id_width = max(len(row["id"].encode()) for row in part)
        with h5py.File(tmp, "w", libver="earliest") as f:
            filters = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
            make = lambda name, shape, dtype, chunks: f.create_dataset(  # noqa: E731
                name, shape=shape, dtype=dtype, chunks=chunks, track_times=False, **filters)
            chrom = make(schema.DATASET_WINDOW_CHROM, (n,), np.int32, (min(chunk, n),))
            start = make(schema.DATASET_WINDOW_START, (n,), np.int64, (min(chunk, n),))
            tokens = make(schema.DATASET_TOKENS, (n, window // K), np.uint16, (min(chunk, n), window // K))
            labs = make(schema.DATASET_LABELS, (1, n, len(labels)), np.int8, (1, min(chunk, n), len(labels)))
            lengths = make(DATASET_SEQUENCE_LENGTH, (n,), np.int32, (min(chunk, n),))
            ids = make(DATASET_ROW_ID, (n,), f"S{id_width}", (min(chunk, n),))
            for j, row in enumerate(part):
                row_tokens, row_labels, seq = _reference_row(row, labels, window, vocab)
                chrom[j] = 0
                start[j] = first + j
                tokens[j] = row_tokens
                labs[0, j] = row_labels
                lengths[j] = len(seq)
                ids[j] = row["id"].encode()
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        os.replace(tmp, final)
        (out / f"{final.name}.sha256").write_text(f"{digest}  {final.name}\n")
        shards += 1
    return shards


def _shard_arrays(folder: Path) -> list[dict[str, np.ndarray]]:
    shards = []
    for path in sorted(folder.glob("shard-*.h5")):
        with h5py.File(path, "r") as f:
            shards.append({name: f[name][()] for name in f})
    return shards


def same_shard_content(a: Path, b: Path) -> bool:
    """Whether two folders hold shards with the same datasets, dtypes and values."""
    left, right = _shard_arrays(a), _shard_arrays(b)
    return len(left) == len(right) and all(
        x.keys() == y.keys() and all(x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x)
        for x, y in zip(left, right))


def tables(tmp: Path, rows: int, repeats: int) -> dict[str, Any]:
    table = write_table(tmp / "train.csv", rows, np.random.default_rng(0))
    config = SequenceDataConfig.model_validate({"sequences": {"train": [str(table)]}})  # window: the longest row
    # the reference builds the pipeline's shards: same datasets and values (checked before timing)
    built = build(config, tmp / "check_pipeline", progress=False)["train"]
    table_reference(table, tmp / "check_reference", config.bin_size)
    table_reference(table, tmp / "check_reference_batched", config.bin_size, write_rows=False)
    same = (same_shard_content(built, tmp / "check_reference")
            and same_shard_content(built, tmp / "check_reference_batched"))
    if not same:
        raise RuntimeError("the per-row reference's shards differ from the pipeline's")
    outs = iter(range(1000))
    cases = {
        "pipeline": lambda: build(config, tmp / f"p{next(outs)}", progress=False),
        "reference": lambda: table_reference(table, tmp / f"r{next(outs)}", config.bin_size),
        "reference_batched_writes": lambda: table_reference(table, tmp / f"b{next(outs)}", config.bin_size,
                                                            write_rows=False),
    }
    wall, cpu = interleaved_clocks(cases, repeats)
    med = {name: summarize(v)["median_s"] for name, v in wall.items()}
    cpu_med = {name: summarize(v)["median_s"] for name, v in cpu.items()}
    result: dict[str, Any] = {
        "rows": rows, "row_bp": ROW_BP, "window": ROW_BP, "k": K, "rounds": repeats, "same_shard_content": same,
        "reference": "per row: csv.DictReader, each base checked, centred, k-mer by k-mer dict lookup, labels one "
                     "by one, the row written into the shard's HDF5 datasets (same chunks and gzip), each shard "
                     "hashed and renamed; a first pass over the rows for the window",
        "reference_batched_writes": "the same per-row parsing and tokenising, each shard written at once by the "
                                    "pipeline's writer (read back, hashed, fsynced)",
    }
    for name in cases:
        result[f"{name}_s"] = round(med[name], 4)
        result[f"{name}_cpu_s"] = round(cpu_med[name], 4)
        result[f"{name}_sequences_per_s"] = round(rows / med[name], 1)
    result["speedup"] = round(med["reference"] / med["pipeline"], 2)
    result["speedup_cpu"] = round(cpu_med["reference"] / cpu_med["pipeline"], 2)
    result["speedup_over_batched_writes"] = round(med["reference_batched_writes"] / med["pipeline"], 2)
    result["speedup_over_batched_writes_cpu"] = round(cpu_med["reference_batched_writes"] / cpu_med["pipeline"], 2)
    return result


def regions_reference(fasta: Path, manifest: list[dict], starts: np.ndarray) -> int:
    genome = pyfaidx.Fasta(str(fasta), as_raw=True)
    vocab = {"".join(p): 6 + i for i, p in enumerate(product("ACGT", repeat=K))}
    bws = [[pyBigWig.open(p) for p in cell["tracks"].values()] for cell in manifest]
    segs = []
    for cell in manifest:
        rows = [line.split("\t") for line in Path(cell["segmentation"]).read_text().splitlines()]
        segs.append(([int(r[1]) for r in rows], [int(r[2]) for r in rows], [int(r[3].strip()[1:]) for r in rows]))
    for s in starts.tolist():
        seq = genome[sim_inputs.CONTIG][s:s + WINDOW].upper()
        _ = [vocab.get(seq[i:i + K], 5) for i in range(0, WINDOW, K)]
        for c, cell_bws in enumerate(bws):
            for bw in cell_bws:
                _ = [bw.stats(sim_inputs.SIGNAL_CONTIG, b, b + 200, type="mean", exact=True)[0]
                     for b in range(s, s + WINDOW, 200)]
            st, en, state = segs[c]
            _ = [state[i] if (i := bisect.bisect_right(st, m) - 1) >= 0 and m < en[i] else 0
                 for m in range(s + 100, s + WINDOW, 200)]
    return len(starts)


def regions(tmp: Path, n: int, repeats: int) -> dict[str, Any]:
    length = 10_000_000
    rng = np.random.default_rng(1)
    fasta = sim_inputs.write_fasta(tmp / "genome.fa", random_dna(rng, length))
    manifest = sim_inputs.write_epigenome(tmp, length, 2, ASSAYS, rng)
    mids = np.sort(rng.integers(WINDOW, length - WINDOW, n))
    bed = tmp / "regions.bed"
    bed.write_text("".join(f"chrX\t{m - 100}\t{m + 100}\t{int(rng.integers(0, 2))}\n" for m in mids))
    outs = iter(range(1000))

    def pipeline() -> None:
        cfg = sim_inputs.write_config(tmp / "cfg.yaml", fasta, manifest, [sim_inputs.CONTIG], tmp / f"o{next(outs)}",
                                      WINDOW, 200, K)
        text = cfg.read_text() + f"regions:\n  bed: {bed}\n  windows: center\n  label_columns: {{bound: 4}}\n"
        cfg.write_text(text)
        run(make_plan(load_config(cfg, "finetuning"), "finetuning"), workers=1, progress=False)

    starts = mids - WINDOW // 2
    times = interleaved({"pipeline": pipeline, "reference": lambda: regions_reference(fasta, manifest, starts)}, repeats)
    p, r = summarize(times["pipeline"])["median_s"], summarize(times["reference"])["median_s"]
    return {"regions": n, "window": WINDOW, "cell_types": 2, "tracks_per_cell": len(ASSAYS), "rounds": repeats,
            "pipeline_s": round(p, 4), "pipeline_sequences_per_s": round(n / p, 1),
            "reference_s": round(r, 4), "reference_sequences_per_s": round(n / r, 1), "speedup": round(r / p, 2)}


def prediction_split(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    shards, left, i = [], n, 0
    while left:
        w = min(left, 65536)
        start = (np.arange(w, dtype=np.int64) + (n - left)) * 200
        arrays = {schema.DATASET_WINDOW_CHROM: np.zeros(w, np.int32), schema.DATASET_WINDOW_START: start}
        sha = write_shard(folder, i, arrays, {k: 0 for k in arrays}, "gzip", 64)
        shards.append({"file": schema.SHARD_PATTERN.format(index=i), "num_windows": w, "sha256": sha})
        left, i = left - w, i + 1
    atomic_write_json(folder / schema.DATA_PARAMS_FILE, {
        "schema_version": 1, "kind": "finetuning", "split": "test", "num_windows": n, "shards": shards,
        "contigs": ["chr1"], "window_length": 1000, "stride": 200, "bin_size": 200,
        "tokenizer": {"k": 4, "vocab_size": 262}, "tokens_per_window": 250, "tokens_per_bin": 50, "num_bins": 5,
        "cell_types": ["c"], "chromatin_states": None, "tracks": None, "labels": {"names": list("ABCD")}})
    return folder


def predictions(tmp: Path, n: int, repeats: int) -> dict[str, Any]:
    params = load_data_params(prediction_split(tmp / "split", n))
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(1, n, 4)).astype(np.float32)
    preds = SampleScores(tuple("ABCD"), ("c",), scores, scores, scores)

    times = interleaved({"tsv": lambda: write_predictions(tmp / "p.tsv", params, preds),
                         "bigwig": lambda: write_predictions(tmp / "p.bw", params, preds)}, repeats)
    med = {k: summarize(v)["median_s"] for k, v in times.items()}
    return {"windows": n, "labels": 4, "rounds": repeats,
            "tsv_rows_per_s": round(n / med["tsv"], 1), "bigwig_values_per_s": round(4 * n / med["bigwig"], 1)}


def memory(tmp: Path, rows: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = {}
    for name, n in (("small", rows), ("large", rows * 10)):
        table = write_table(tmp / f"{name}.csv", n, np.random.default_rng(3))
        m = run_measured([sys.executable, str(CLI), "--train", str(table), "--output_dir", str(tmp / name),
                          "--no_progress"], env=env, cwd=ROOT)
        if m["returncode"]:
            raise RuntimeError(f"{CLI.name} failed: {m['output'][-2000:]}")
        out[name] = {"rows": n, "table_mb": round(table.stat().st_size / 1e6, 1),
                     "peak_rss_mb": round(m["peak_rss_mb"], 1), "wall_s": round(m["seconds"], 2)}
    out["large_over_small_peak_rss"] = round(out["large"]["peak_rss_mb"] / out["small"]["peak_rss_mb"], 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, "small sizes, one round, no target judged", RESULTS)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the sequence table")
    parser.add_argument("--regions", type=int, default=5_000, help="BED regions")
    parser.add_argument("--predictions", type=int, default=200_000, help="windows of the predictions")
    parser.add_argument("--memory-rows", type=int, default=20_000, help="rows of the small memory run (large: 10x)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.regions, args.predictions, args.memory_rows, args.repeats = 3000, 200, 5000, 1000, 1
    result: dict[str, Any] = {"benchmark": "own_data", "quick": args.quick, "available": True,
                              "conditions": {**machine(), "pipeline_workers": 1}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("tables", "regions", "predictions", "memory"):
            (tmp / name).mkdir()
        result["tables"] = tables(tmp / "tables", args.rows, args.repeats)
        result["regions"] = regions(tmp / "regions", args.regions, args.repeats)
        result["predictions"] = predictions(tmp / "predictions", args.predictions, args.repeats)
        result["memory"] = memory(tmp / "memory", args.memory_rows)
    judge = (lambda ok: None) if args.quick else (lambda ok: ok)
    result["targets"] = {
        "tables_speedup_over_reference": target(f">= {SPEEDUP_TARGET}x", result["tables"]["speedup"],
                                                judge(result["tables"]["speedup"] >= SPEEDUP_TARGET)),
        "regions_speedup_over_reference": target(f">= {SPEEDUP_TARGET}x", result["regions"]["speedup"],
                                                 judge(result["regions"]["speedup"] >= SPEEDUP_TARGET)),
        "table_10x_rows_peak_rss_ratio": target("<= 1.2 (bounded by the shard size)",
                                                result["memory"]["large_over_small_peak_rss"],
                                                judge(result["memory"]["large_over_small_peak_rss"] <= 1.2)),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
