"""Own labelled data: sequence tables and BED regions to shards (sequences/s) against a
straightforward per-row reference in the same run, predictions written per second, and peak
memory of the sequence CLI on a small vs a 10x larger table.

    PYTHONPATH=. python bench/bench_own_data.py            # 100k-row table, 5k regions, 200k predictions
    PYTHONPATH=. python bench/bench_own_data.py --quick    # seconds (what the tests run)

Inputs are seeded random DNA (the figures do not depend on the sequence) and, for regions, the
simulated epigenome of bench/sim_inputs.py (2 cell types x 15 states + 2 tracks).

- Tables: CSV ``id,sequence,a,b`` of 200 bp rows. Pipeline: sequence_data.build (csv module, one
  vectorised tokenisation per 4,096 rows, shards of 2,048). Reference: per row, labels parsed,
  the row centred and tokenised with DNATokenizer.encode, the shard stacked and written by the
  same writer.
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
import os
import sys
import tempfile
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pyBigWig
import pyfaidx

from bench import sim_inputs
from bench.common import bench_parser, interleaved, machine, run_measured, summarize, target, write_json
from ebert_modelzoo.contract import schema
from ebert_modelzoo.contract.data_params import load_data_params
from ebert_modelzoo.evaluation.prediction_files import write_predictions
from ebert_modelzoo.evaluation.sample_scores import SampleScores
from ebert_modelzoo.preprocessing.config import SequenceDataConfig, load_config
from ebert_modelzoo.preprocessing.pipeline import make_plan, run
from ebert_modelzoo.preprocessing.sequence_data import build
from ebert_modelzoo.preprocessing.sequence_files import SequenceFile
from ebert_modelzoo.preprocessing.writer import atomic_write_json, write_shard
from ebert_modelzoo.tokenizer import DNATokenizer

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


def table_reference(path: Path, out: Path, window: int) -> int:
    """Per-row: parse, centre, tokenise, collect; stack and write each shard with the same writer."""
    tok = DNATokenizer(K)
    rows: dict[str, list] = {"tokens": [], "labels": [], "start": [], "ids": []}
    shards = 0

    def flush() -> None:
        nonlocal shards
        arrays = {schema.DATASET_WINDOW_CHROM: np.zeros(len(rows["tokens"]), np.int32),
                  schema.DATASET_WINDOW_START: np.asarray(rows["start"], np.int64),
                  schema.DATASET_TOKENS: np.stack(rows["tokens"]),
                  schema.DATASET_LABELS: np.asarray(rows["labels"], np.int8)[None],
                  "row_id": np.asarray([i.encode() for i in rows["ids"]])}
        axis = {k: (1 if k == schema.DATASET_LABELS else 0) for k in arrays}
        write_shard(out, shards, arrays, axis, "gzip", 64)
        shards += 1
        for v in rows.values():
            v.clear()

    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            seq = row["sequence"].strip()
            left = (window - len(seq)) // 2 // K * K
            ids = np.zeros(window // K, np.uint16)
            usable = len(seq) // K * K
            ids[left // K:(left + usable) // K] = tok.encode(seq[:usable])
            rows["tokens"].append(ids)
            rows["labels"].append([int(row["a"]), int(row["b"])])
            rows["start"].append(i)
            rows["ids"].append(row["id"])
            if len(rows["tokens"]) == SHARD:
                flush()
    if rows["tokens"]:
        flush()
    return shards


def tables(tmp: Path, rows: int, repeats: int) -> dict[str, Any]:
    table = write_table(tmp / "train.csv", rows, np.random.default_rng(0))
    config = SequenceDataConfig.model_validate({"sequences": {"train": [str(table)]}})  # window: the longest row
    outs = iter(range(1000))
    times = interleaved({
        "pipeline": lambda: build(config, tmp / f"p{next(outs)}", progress=False),
        "reference": lambda: table_reference(table, tmp / f"r{next(outs)}", ROW_BP),
    }, repeats)
    p, r = summarize(times["pipeline"])["median_s"], summarize(times["reference"])["median_s"]
    # the same two without writing shards: reading, checking and tokenising only
    reader = SequenceFile(table)
    tok = DNATokenizer(K)

    def read_pipeline() -> None:
        for block in reader.blocks(["a", "b"], 4096):
            tok.encode_centred(block.sequences, ROW_BP)

    def read_reference() -> None:
        with open(table, newline="") as fh:
            for row in csv.DictReader(fh):
                seq = row["sequence"].strip()
                left = (ROW_BP - len(seq)) // 2 // K * K
                ids = np.zeros(ROW_BP // K, np.uint16)
                ids[left // K:(left + len(seq) // K * K) // K] = tok.encode(seq[:len(seq) // K * K])
                _ = (int(row["a"]), int(row["b"]))

    no_write = interleaved({"pipeline": read_pipeline, "reference": read_reference}, repeats)
    pr, rr = summarize(no_write["pipeline"])["median_s"], summarize(no_write["reference"])["median_s"]
    return {"rows": rows, "row_bp": ROW_BP, "window": ROW_BP, "k": K, "rounds": repeats,
            "read_and_tokenise_only": {"pipeline_sequences_per_s": round(rows / pr, 1),
                                       "reference_sequences_per_s": round(rows / rr, 1), "speedup": round(rr / pr, 2)},
            "pipeline_s": round(p, 4), "pipeline_sequences_per_s": round(rows / p, 1),
            "reference_s": round(r, 4), "reference_sequences_per_s": round(rows / r, 1), "speedup": round(r / p, 2)}


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
