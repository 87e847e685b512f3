"""Preprocessing throughput: the real pipeline vs a straightforward reference on the same region.

    PYTHONPATH=. python bench/bench_preprocessing.py            # 3 Mbp of real GRCh37 chrX
    PYTHONPATH=. python bench/bench_preprocessing.py --mbp 20   # bigger

Real DNA from Debian `smalt-examples` (hs37chrXtrunc.fa.gz); the epigenome (bigWigs with 25-100 bp
intervals, dense 200 bp-multiple segmentations) is simulated, seeded, for that region. The reference
tokenises base by base in Python and calls pyBigWig.values once per window and track. Writes
bench/results/preprocessing.json with Mbp/s, peak RSS and bytes per window/cell type, and the
projected size and time for hg38 x 127 cell types.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from bisect import bisect_right
from itertools import product
from pathlib import Path

import h5py
import numpy as np
import pyBigWig
import pyfaidx
import yaml

from ebert_modelzoo.preprocessing.config import load_config
from ebert_modelzoo.preprocessing.pipeline import make_plan, run

SOURCE = Path("/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz")
START = 2_700_000  # GRCh37 X: past the PAR1 N gaps
HG38_BP = 3.1e9
ROADMAP_CELLS = 127


def make_inputs(tmp: Path, length: int, cells: int, rng: np.random.Generator) -> list[dict]:
    with gzip.open(SOURCE, "rt") as fh:
        fh.readline()
        seq = "".join(line.strip() for line in fh)[START:START + length]
    with open(tmp / "genome.fa", "w") as fh:
        fh.write(">chrX\n")
        fh.writelines(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60))
    pyfaidx.Faidx(str(tmp / "genome.fa"))
    manifest = []
    for c in range(cells):
        tracks = {}
        for assay in ("DNase", "H3K27ac"):
            path = tmp / f"cell{c}.{assay}.bw"
            widths = rng.integers(25, 101, size=length // 25)
            ends = np.minimum(np.cumsum(widths), length)
            ends = ends[: np.searchsorted(ends, length) + 1]
            starts = np.concatenate([[0], ends[:-1]])
            bw = pyBigWig.open(str(path), "w")
            bw.addHeader([("chrX", length)])
            bw.addEntries(["chrX"] * len(starts), starts.tolist(), ends=ends.tolist(),
                          values=rng.lognormal(0, 1, size=len(starts)).tolist())
            bw.close()
            tracks[assay] = str(path)
        bounds = np.minimum(np.cumsum(200 * rng.integers(1, 20, size=length // 200)), length)
        bounds = bounds[: np.searchsorted(bounds, length) + 1]
        seg = tmp / f"cell{c}.bed"
        seg.write_text("".join(f"chrX\t{a}\t{b}\tE{rng.integers(1, 16)}\n"
                               for a, b in zip(np.concatenate([[0], bounds[:-1]]), bounds)))
        manifest.append({"name": f"cell{c}", "segmentation": str(seg), "tracks": tracks})
    return manifest


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
        seq = str(genome["chrX"][start:start + window]).upper()
        tokens = [vocab.get(seq[i:i + k], 5) for i in range(0, window, k)]
        for c, cell_bws in enumerate(bws):
            for bw in cell_bws:
                vals = np.array(bw.values("chrX", start, start + window))
                _ = [np.nanmean(vals[b:b + bin_size]) for b in range(0, window, bin_size)]
            s, e, st = segs[c]
            _ = [st[i] if (i := bisect_right(s, m) - 1) >= 0 and m < e[i] else 0
                 for m in range(start + bin_size // 2, start + window, bin_size)]
        n += len(tokens) > 0
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbp", type=float, default=3.0, help="region length in Mbp")
    parser.add_argument("--cells", type=int, default=2, help="simulated cell types")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "preprocessing.json"))
    args = parser.parse_args()
    length = int(args.mbp * 1e6)
    window, bin_size, k = 1000, 200, 1
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = make_inputs(tmp, length, args.cells, rng)
        cfg = {"genome": {"fasta": str(tmp / "genome.fa")}, "split": {"train": ["chrX"]},
               "windows": {"window_length": window, "stride": window, "bin_size": bin_size},
               "tokenizer": {"k": k}, "cell_types": manifest,
               "output": {"output_dir": str(tmp / "out"), "windows_per_shard": 2048, "chunk_windows": 64}}
        (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        plan = make_plan(load_config(tmp / "cfg.yaml", "pretraining"), "pretraining")
        run(plan, workers=args.workers, progress=False)
        pipeline_s = time.perf_counter() - t0
        # peak memory of the real CLI building the same dataset afresh in a child process
        cli = Path(__file__).resolve().parents[1] / "data_processing" / "create_pretraining_data.py"
        subprocess.run([sys.executable, str(cli), "--config", str(tmp / "cfg.yaml"), "--output_dir",
                        str(tmp / "out_cli"), "--no_progress", "--workers", str(args.workers)], check=True,
                       env={**os.environ, "PYTHONPATH": str(cli.parents[1])}, capture_output=True)
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        storage: dict[str, int] = {}
        windows = 0
        for shard in sorted((tmp / "out" / "train").glob("shard-*.h5")):
            with h5py.File(shard) as f:
                windows += f["tokens"].shape[0]
                for name in f:
                    storage[name] = storage.get(name, 0) + f[name].id.get_storage_size()
        t0 = time.perf_counter()
        reference(tmp / "genome.fa", manifest, length, window, bin_size, k)
        reference_s = time.perf_counter() - t0

    dna_per_window = (storage["tokens"] + storage["window_chrom"] + storage["window_start"]) / windows
    epi_per_cell_window = (storage["states"] + storage["signal"]) / windows / args.cells
    hg38_windows = HG38_BP / window
    cell_bp_per_s = length * args.cells / pipeline_s
    result = {
        "region_mbp": args.mbp, "cell_types": args.cells, "tracks_per_cell": 2, "window": window,
        "bin_size": bin_size, "k": k, "workers": args.workers, "windows": windows,
        "pipeline_s": round(pipeline_s, 3), "pipeline_mbp_per_s": round(length / 1e6 / pipeline_s, 3),
        "reference_s": round(reference_s, 3), "reference_mbp_per_s": round(length / 1e6 / reference_s, 3),
        "speedup": round(reference_s / pipeline_s, 2),
        "peak_rss_mb_cli": round(peak_rss_mb, 1),
        "bytes_per_window_dna": round(dna_per_window, 1),
        "bytes_per_window_per_cell_epigenome": round(epi_per_cell_window, 1),
        "projection_hg38_x127": {
            "note": "1 kb windows, stride 1 kb, k=1, 200 bp bins, 15 states + 2 tracks per cell type; "
                    "time at this run's per-process (cell x bp)/s, divide by workers",
            "size_gb": round(hg38_windows * (dna_per_window + ROADMAP_CELLS * epi_per_cell_window) / 1e9, 1),
            "time_h_one_process": round(HG38_BP * ROADMAP_CELLS / cell_bp_per_s / 3600, 1),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
