"""Preprocessing: throughput of the real pipeline vs a straightforward reference, and peak memory
on the whole chromosome.

    PYTHONPATH=. python bench/bench_preprocessing.py            # 3 Mbp throughput; 10 Mb vs all of chrX
    PYTHONPATH=. python bench/bench_preprocessing.py --quick    # seconds: small regions (what tests run)

DNA: real GRCh37 chrX from Debian `smalt-examples` (hs37chrXtrunc.fa.gz, 70 Mb); the epigenome
(bigWigs, segmentations) is simulated, seeded (bench/sim_inputs.py). Without smalt-examples the
JSON says so and holds no figure.

Throughput: the pipeline (in this process, one worker) and the reference (tokenises base by base
in Python, calls pyBigWig.values once per window and track, bins in Python) on the same region,
interleaved round by round in the same run (medians); Mbp/s of each and the speedup.

Memory: the chromosome bgzip-compressed and indexed, bigWigs and segmentations covering all of it;
the real CLI (data_processing/create_pretraining_data.py) builds a dataset from a 10 Mb region and
from the whole chromosome, each in its own process; peak RSS (wait4: the process and the workers
it waited for) of both. Bounded memory means the two are about equal.

Writes bench/results/preprocessing.json.
"""
from __future__ import annotations

import os
import sys
import tempfile
from bisect import bisect_right
from itertools import product
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyBigWig
import pyfaidx

from bench import sim_inputs
from bench.common import bench_parser, interleaved, machine, run_measured, summarize, target, write_json
from ebert_modelzoo.preprocessing.config import load_config
from ebert_modelzoo.preprocessing.pipeline import make_plan, run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "preprocessing.json"
CLI = ROOT / "data_processing" / "create_pretraining_data.py"
HG38_BP = 3.1e9
ROADMAP_CELLS = 127
ASSAYS = ("DNase", "H3K27ac")
WINDOW, BIN_SIZE, K = 1000, 200, 1
PEAK_RSS_TARGET_MB = 1536
SPEEDUP_TARGET = 10  # the target: >= 10x the straightforward reference


def reference(fasta: Path, manifest: list[dict], length: int, window: int, bin_size: int, k: int) -> int:
    """Per-window, per-base reference; returns windows processed."""
    vocab = {"".join(p): 6 + i for i, p in enumerate(product("ACGT", repeat=k))}
    genome = pyfaidx.Fasta(str(fasta))
    bws = [[pyBigWig.open(p) for p in cell["tracks"].values()] for cell in manifest]
    segs = []
    for cell in manifest:
        rows = [line.split("\t") for line in Path(cell["segmentation"]).read_text().splitlines()]
        segs.append(([int(r[1]) for r in rows], [int(r[2]) for r in rows], [int(r[3].strip()[1:]) for r in rows]))
    n = 0
    for start in range(0, length - window + 1, window):
        seq = str(genome[sim_inputs.CONTIG][start:start + window]).upper()
        tokens = [vocab.get(seq[i:i + k], 5) for i in range(0, window, k)]
        for c, cell_bws in enumerate(bws):
            for bw in cell_bws:
                vals = np.array(bw.values(sim_inputs.SIGNAL_CONTIG, start, start + window))
                _ = [np.nanmean(vals[b:b + bin_size]) for b in range(0, window, bin_size)]
            s, e, st = segs[c]
            _ = [st[i] if (i := bisect_right(s, m) - 1) >= 0 and m < e[i] else 0
                 for m in range(start + bin_size // 2, start + window, bin_size)]
        n += len(tokens) > 0
    return n


def throughput(tmp: Path, mbp: float, cells: int, repeats: int) -> dict[str, Any]:
    """Pipeline vs reference on ``mbp`` Mbp of chrX (from sim_inputs.START), same inputs, in
    interleaved rounds (one warm-up each), medians."""
    length = int(mbp * 1e6)
    rng = np.random.default_rng(0)
    fasta = sim_inputs.write_fasta(tmp / "genome.fa", sim_inputs.read_dna(sim_inputs.START, length))
    manifest = sim_inputs.write_epigenome(tmp, length, cells, ASSAYS, rng)
    outputs = iter(tmp / f"out{i}" for i in range(repeats + 1))

    def pipeline() -> None:  # a fresh output folder each time: a rerun would skip finished shards
        cfg = sim_inputs.write_config(tmp / "cfg.yaml", fasta, manifest, [sim_inputs.CONTIG], next(outputs),
                                      WINDOW, BIN_SIZE, K)
        run(make_plan(load_config(cfg, "pretraining"), "pretraining"), workers=1, progress=False)

    times = interleaved({"pipeline": pipeline, "reference": lambda: reference(fasta, manifest, length, WINDOW,
                                                                               BIN_SIZE, K)}, repeats)
    pipeline_s = summarize(times["pipeline"])["median_s"]
    reference_s = summarize(times["reference"])["median_s"]

    storage: dict[str, int] = {}
    windows = 0
    for shard in sorted((tmp / "out0" / "train").glob("shard-*.h5")):
        with h5py.File(shard) as f:
            windows += f["tokens"].shape[0]
            for name in f:
                storage[name] = storage.get(name, 0) + f[name].id.get_storage_size()
    dna_per_window = (storage["tokens"] + storage["window_chrom"] + storage["window_start"]) / windows
    epi_per_cell_window = (storage["states"] + storage["signal"]) / windows / cells
    cell_bp_per_s = length * cells / pipeline_s
    return {
        "region_mbp": mbp, "cell_types": cells, "tracks_per_cell": len(ASSAYS), "windows": windows,
        "rounds": repeats, "pipeline_s": round(pipeline_s, 6), "pipeline_mbp_per_s": round(length / 1e6 / pipeline_s, 3),
        "reference_s": round(reference_s, 6), "reference_mbp_per_s": round(length / 1e6 / reference_s, 3),
        "speedup": round(reference_s / pipeline_s, 2),
        "bytes_per_window_dna": round(dna_per_window, 1),
        "bytes_per_window_per_cell_epigenome": round(epi_per_cell_window, 1),
        "projection_hg38_x127": {
            "note": f"{WINDOW} bp windows, stride {WINDOW}, k={K}, {BIN_SIZE} bp bins, 15 states + "
                    f"{len(ASSAYS)} tracks per cell type; time at this run's (cell x bp)/s, divide by workers",
            "size_gb": round(HG38_BP / WINDOW * (dna_per_window + ROADMAP_CELLS * epi_per_cell_window) / 1e9, 1),
            "time_h_one_process": round(HG38_BP * ROADMAP_CELLS / cell_bp_per_s / 3600, 1),
        },
    }


def peak_memory(tmp: Path, small_mbp: float, quick: bool, cells: int, workers: int) -> dict[str, Any]:
    """Peak RSS of the CLI on ``small_mbp`` Mb vs the whole chromosome (quick: a 2 Mb chromosome)."""
    if quick:  # a short plain FASTA standing in for the chromosome
        fasta = sim_inputs.write_fasta(tmp / "chrX.fa", sim_inputs.read_dna(sim_inputs.START, 2_000_000))
    else:
        fasta = sim_inputs.bgzip_whole_chromosome(tmp)
    length = len(pyfaidx.Fasta(str(fasta), as_raw=True)[sim_inputs.CONTIG])
    manifest = sim_inputs.write_epigenome(tmp, length, cells, ASSAYS, np.random.default_rng(1))
    small = int(small_mbp * 1e6)
    start = min(sim_inputs.START, length - small)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    runs = {}
    for name, region in ((f"{small_mbp:g}_mb", f"{sim_inputs.CONTIG}:{start}-{start + small}"),
                         ("whole_chromosome", sim_inputs.CONTIG)):
        cfg = sim_inputs.write_config(tmp / f"mem_{name}.yaml", fasta, manifest, [region], tmp / f"mem_{name}",
                                      WINDOW, BIN_SIZE, K)
        measured = run_measured([sys.executable, str(CLI), "--config", str(cfg), "--no_progress",
                                 "--workers", str(workers)], env=env, cwd=ROOT)
        if measured["returncode"]:
            raise RuntimeError(f"{CLI.name} on {region} failed: {measured['output'][-2000:]}")
        runs[name] = {"region": region, "region_mbp": round((small if name != "whole_chromosome" else length) / 1e6, 3),
                      "peak_rss_mb": round(measured["peak_rss_mb"], 1), "wall_s": round(measured["seconds"], 2)}
    small_run, whole = runs[f"{small_mbp:g}_mb"], runs["whole_chromosome"]
    return {
        "fasta": "plain FASTA, 2 Mb of chrX (--quick)" if quick else "whole chrX, bgzip + .fai/.gzi",
        "chromosome_mb": round(length / 1e6, 2), "cell_types": cells, "tracks_per_cell": len(ASSAYS),
        "workers": workers, "runs": runs,
        "whole_over_small_peak_rss": round(whole["peak_rss_mb"] / small_run["peak_rss_mb"], 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, "0.2 Mbp throughput, 0.5 Mb vs a 2 Mb chromosome", RESULTS)
    parser.add_argument("--mbp", type=float, default=3.0, help="throughput region length in Mbp")
    parser.add_argument("--memory-mbp", type=float, default=10.0, help="the small region of the memory runs, Mb")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of pipeline vs reference")
    parser.add_argument("--cells", type=int, default=2, help="simulated cell types")
    parser.add_argument("--workers", type=int, default=1, help="CLI workers of the memory runs")
    parser.add_argument("--source", type=Path, default=sim_inputs.SOURCE, help="the chrX FASTA (gzip)")
    args = parser.parse_args(argv)
    if args.quick:
        args.mbp, args.memory_mbp, args.repeats = 0.2, 0.5, 1
    sim_inputs.SOURCE = args.source
    result: dict[str, Any] = {"benchmark": "preprocessing", "quick": args.quick,
                              "conditions": {**machine(), "pipeline_workers": 1, "memory_run_workers": args.workers,
                                             "window": WINDOW, "bin_size": BIN_SIZE, "k": K}}
    missing = sim_inputs.missing_source()
    if missing:
        result["available"], result["reason"] = False, missing
        result["targets"] = {"peak_rss_whole_chrX_mb": target(f"<= {PEAK_RSS_TARGET_MB}", None, None)}
    else:
        result["available"] = True
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "tp").mkdir()
            (Path(tmp) / "mem").mkdir()
            result["throughput"] = throughput(Path(tmp) / "tp", args.mbp, args.cells, args.repeats)
            result["memory"] = peak_memory(Path(tmp) / "mem", args.memory_mbp, args.quick, args.cells, args.workers)
        whole = result["memory"]["runs"]["whole_chromosome"]["peak_rss_mb"]
        result["targets"] = {
            "speedup_over_reference": target(f">= {SPEEDUP_TARGET}x", result["throughput"]["speedup"],
                                             None if args.quick else result["throughput"]["speedup"] >= SPEEDUP_TARGET),
            "peak_rss_whole_chrX_mb": target(f"<= {PEAK_RSS_TARGET_MB}", whole,
                                             None if args.quick else whole <= PEAK_RSS_TARGET_MB),
        }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
