"""``python -m ebert_modelzoo.interpret TASK`` (also the ``ebert-interpret`` script): one command per task.

    attribute  per-base attributions of regions in a cell type for a label: .npz, bigWigs, logo
    motifs     TF-MoDISco motifs from attributions over bound windows, matched to JASPAR (TOMTOM)
    variants   VCF -> ref/alt logits and log-odds difference per variant x cell type x label (TSV)
    truth      the known-truth checks of a simulation (motif recovery, core mutations) + figure

Each reads a fine-tuning run (``--params``, newest checkpoint in its model_dir unless
``--checkpoint_path``) and a split folder (``--data_dir``, default the params' validation data).
Errors print one line naming the file or value and exit non-zero.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ebert_modelzoo.errors import BadInputError, CheckpointError, InterpretError
from ebert_modelzoo.interpret.attribution import METHODS, attribute
from ebert_modelzoo.interpret.scoring import DEFAULT_BATCH_SIZE, DEFAULT_LOADER, Scorer, parse_region

LOGGER = logging.getLogger("ebert_modelzoo")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--params", required=True, help="the fine-tuning run's params YAML")
    parser.add_argument("--checkpoint_path", help="checkpoint (default: the newest in the params' model_dir)")
    parser.add_argument("--data_dir", help="split folder to read windows from (default: the --loader's data_dir)")
    parser.add_argument("--loader", default=DEFAULT_LOADER, help=f"dataloader section to follow (default {DEFAULT_LOADER})")
    parser.add_argument("--batch_size", type=int, default=None,
                        help=f"samples per forward pass (default {DEFAULT_BATCH_SIZE} on a GPU; on the CPU sized to the "
                             "model and threads so that a pass stays cache-sized, e.g. 64 per thread for ebert_tiny)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda for a GPU run when present, else cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ebert_modelzoo.interpret", description=__doc__.split("\n\n")[0])
    tasks = parser.add_subparsers(dest="task", required=True)

    p = tasks.add_parser("attribute", help="attributions of regions: .npz, one bigWig per method, a logo")
    _common(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--region", action="append", help="chr:start-end (0-based, half-open); repeatable")
    where.add_argument("--regions", help="BED file of regions (chrom, start, end)")
    p.add_argument("--cell_type", required=True)
    p.add_argument("--label", required=True, help="the output (e.g. TF) to explain")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)} (default all)")
    p.add_argument("--epigenome_of", help="read this cell type's epigenome instead (what if)")
    p.add_argument("--ism_whole_window", action="store_true", help="ISM over the whole window, not just the region")
    p.add_argument("--out", required=True, help="output prefix: PREFIX.npz, PREFIX.<method>.bw, PREFIX.logo.png")

    p = tasks.add_parser("motifs", help="TF-MoDISco motifs over bound windows, TOMTOM against JASPAR")
    _common(p)
    p.add_argument("--cell_type", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--motifs", required=True, help="target motifs: a motif JSON (e.g. data_processing/demo_data/"
                                                  "motifs.json) or a MEME file (e.g. JASPAR CORE)")
    p.add_argument("--method", default="gradient", choices=METHODS, help="attributions to cluster (default gradient)")
    p.add_argument("--max_windows", type=int, default=2000, help="at most this many bound windows (random subset)")
    p.add_argument("--min_seqlets", type=int, default=100, help="fewest seqlets to cluster / per pattern")
    p.add_argument("--leiden_runs", type=int, default=50, help="Leiden clusterings (modisco's n_leiden_runs)")
    p.add_argument("--out", required=True, help="output folder: motifs.tsv, motifs.json, one logo per pattern")

    p = tasks.add_parser("variants", help="VCF -> per cell type ref/alt logits and log-odds difference (TSV)")
    _common(p)
    p.add_argument("--vcf", required=True, help="VCF or bgzipped VCF")
    p.add_argument("--cell_types", help="comma-separated (default: every cell type of the split)")
    p.add_argument("--epigenome_of", help="what if: score every cell type with this cell type's epigenome")
    p.add_argument("--out", required=True, help="output TSV, sorted by |log_odds_diff|")

    p = tasks.add_parser("truth", help="known-truth checks on simulated data (motif recovery, core mutations)")
    _common(p)
    p.add_argument("--motifs", required=True, help="the simulation's motif JSON (planted JASPAR matrices, thresholds)")
    p.add_argument("--tf", required=True, help="the TF (label) to check")
    p.add_argument("--cell_type", required=True, help="cell type for motif recovery (e.g. the held-out one)")
    p.add_argument("--donors", help="comma-separated cell types whose epigenome the what-if core mutations may read "
                                    "(default every other cell type of the split)")
    p.add_argument("--methods", help="comma-separated attribution methods for motif recovery (default: ism,gradient "
                                     "for a run fed motif tracks, else gradient)")
    p.add_argument("--ism_windows", type=int, help="ISM on at most this many of the bound windows (default all)")
    p.add_argument("--ism_central_bp", type=int, help="ISM over each window's central N bases only (default all)")
    p.add_argument("--track", default="DNase", help="accessibility track that tells closed sites (default DNase)")
    p.add_argument("--core", type=int, default=4, help="most informative motif columns to mutate (default 4)")
    p.add_argument("--max_windows", type=int, default=2000)
    p.add_argument("--min_seqlets", type=int, default=100)
    p.add_argument("--leiden_runs", type=int, default=50)
    p.add_argument("--out", required=True, help="output folder: truth.json, truth.png, motifs/")
    return parser


def _regions(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    if args.region:
        return [parse_region(r) for r in args.region]
    path = Path(args.regions)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BED file not found")
    regions = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t")
        try:
            regions.append((fields[0], int(fields[1]), int(fields[2])))
        except (IndexError, ValueError):
            raise InterpretError(f"{path}:{number}: expected chrom<TAB>start<TAB>end") from None
    if not regions:
        raise InterpretError(f"{path}: no regions")
    return regions


def run_attribute(args: argparse.Namespace, scorer: Scorer) -> list[Path]:
    from ebert_modelzoo.interpret.outputs import save_bigwig, save_logo, save_npz

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    regions = _regions(args)
    windows = np.array([scorer.window_for(*region) for region in regions], dtype=np.int64)
    positions = None
    if not args.ism_whole_window:
        spans = [(start - int(scorer.window_start[w]), end - int(scorer.window_start[w]))
                 for w, (_, start, end) in zip(windows, regions)]
        positions = np.unique(np.concatenate([np.arange(a, b) for a, b in spans]))
    progress = not args.no_progress
    results = [attribute(scorer, windows, args.cell_type, args.label, m, args.epigenome_of,
                         positions if m == "ism" else None, progress) for m in methods]
    out = Path(args.out)
    files = [save_npz(out.with_name(out.name + ".npz"), scorer, results)]
    files += [save_bigwig(out.with_name(f"{out.name}.{r.method}.bw"), scorer, r) for r in results]
    contig, start, end = regions[0]
    offset = int(scorer.window_start[windows[0]])
    epigenome = f" (epigenome of {args.epigenome_of})" if args.epigenome_of else ""
    files.append(save_logo(out.with_name(out.name + ".logo.png"), scorer, results, 0, start - offset, end - offset,
                           f"{args.label} in {args.cell_type}{epigenome}: {contig}:{start}-{end}"))
    return files


def run_motifs(args: argparse.Namespace, scorer: Scorer) -> list[Path]:
    from ebert_modelzoo.interpret import motif_discovery as md

    targets = md.load_targets(args.motifs)
    cell, label = scorer.cell_index(args.cell_type), scorer.label_index(args.label)
    windows = md.bound_windows(scorer.labels(cell)[:, label], args.max_windows)
    LOGGER.info("%d bound windows of %s in %s", windows.size, args.label, args.cell_type)
    attributions = attribute(scorer, windows, args.cell_type, args.label, args.method, progress=not args.no_progress)
    patterns = md.discover(attributions, min_seqlets=args.min_seqlets, leiden_runs=args.leiden_runs)
    md.match(patterns, targets)
    for pattern in patterns:
        best = pattern.matches[0]
        LOGGER.info("%s: %d seqlets, best match %s %s (TOMTOM p = %.3g)", pattern.name, pattern.num_seqlets,
                    best.matrix_id, best.name, best.p_value)
    if not patterns:
        LOGGER.warning("TF-MoDISco found no pattern (too few seqlets? lower --min_seqlets)")
    return [md.write_results(args.out, patterns, f"{args.label} in {args.cell_type} ({args.method})")]


def run_variants(args: argparse.Namespace, scorer: Scorer) -> list[Path]:
    from ebert_modelzoo.interpret.variants import read_variants, score_variants, write_effects

    names = args.cell_types.split(",") if args.cell_types else list(scorer.cell_types)
    cells = [scorer.cell_index(name.strip()) for name in names]
    epigenome_of = scorer.cell_index(args.epigenome_of) if args.epigenome_of else None
    found = read_variants(args.vcf, scorer)
    for reason, count in sorted(found.skipped.items()):
        LOGGER.warning("%s: skipped %d alleles: %s", args.vcf, count, reason)
    if not found.variants:
        raise InterpretError(f"{args.vcf}: no variant could be scored in {scorer.data.path.parent}")
    ref, alt = score_variants(scorer, found.variants, cells, epigenome_of, not args.no_progress)
    rows = write_effects(args.out, scorer, found.variants, cells, ref, alt, epigenome_of)
    LOGGER.info("%d variants x %d cell types x %d labels = %d rows", len(found.variants), len(cells),
                len(scorer.label_names), rows)
    return [Path(args.out)]


def run_truth(args: argparse.Namespace, scorer: Scorer) -> list[Path]:
    from ebert_modelzoo.interpret.report_section import central_positions, truth_checks, write_truth

    donors = [name.strip() for name in args.donors.split(",")] if args.donors else None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    positions = central_positions(scorer, args.ism_central_bp) if args.ism_central_bp else None
    result = truth_checks(scorer, args.motifs, args.tf, args.cell_type, args.track, methods, donors, core=args.core,
                          max_windows=args.max_windows, min_seqlets=args.min_seqlets, leiden_runs=args.leiden_runs,
                          ism_windows=args.ism_windows, ism_positions=positions, motif_dir=Path(args.out) / "motifs",
                          progress=not args.no_progress)
    files = write_truth(Path(args.out), result)
    print(json.dumps(result.summary(), indent=1))
    return files


TASKS = {"attribute": run_attribute, "motifs": run_motifs, "variants": run_variants, "truth": run_truth}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        scorer = Scorer(args.params, args.checkpoint_path, args.data_dir, args.loader, args.device, args.batch_size)
        try:
            files = TASKS[args.task](args, scorer)
        finally:
            scorer.close()
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, CheckpointError, ValueError, RuntimeError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    for path in files:
        LOGGER.info("wrote %s", path)
    return 0
