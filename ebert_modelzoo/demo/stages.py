"""The demo's steps, each through the package's real user path: preprocessing (the CLIs'
``main``), training (run.py's ``main``), predictions (evaluation/predict.py), the motif +
accessibility baseline and the report.

Reruns: preprocessing skips verified finished shards (and refuses a folder built from another
config); a training run is resumed by the trainer from its newest checkpoint (finished runs train
nothing) as long as its fingerprint (its params file + the fingerprints of its data and of the run
it starts from, and the model/trainer code) is unchanged; otherwise its folder is removed and it starts over, with a message.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ebert_modelzoo.atomic import atomic_write_text
from ebert_modelzoo.cli.run import main as run_main
from ebert_modelzoo.config.params import load_params
from ebert_modelzoo.contract.data_params import load_data_params
from ebert_modelzoo.data.motifs import load_motifs
from ebert_modelzoo.demo.runs import REPO_ROOT, Run, params_text
from ebert_modelzoo.errors import DemoError
from ebert_modelzoo.evaluation.baselines import BaselineConfig, run_baseline
from ebert_modelzoo.evaluation.cnn_peer import CNNConfig, run_cnn_peer
from ebert_modelzoo.evaluation.floor_baselines import run_floor
from ebert_modelzoo.evaluation.predict import Predictions, predict
from ebert_modelzoo.evaluation.prediction_files import window_coordinates
from ebert_modelzoo.evaluation.report import (Comparison, EvaluationSet, ReportFiles, TrainingCurve, VariantScores,
                                              read_training_curve, write_report)
from ebert_modelzoo.interpret.scoring import parse_region
from ebert_modelzoo.owned import remove_owned
from ebert_modelzoo.preprocessing.cli import main as preprocess_main
from ebert_modelzoo.preprocessing.genome import match_contig
from ebert_modelzoo.training.checkpoint import checkpoint_path
from ebert_modelzoo.training.reporting import train_log_path

LOGGER = logging.getLogger("ebert_modelzoo.demo")
DEMO_DATA = REPO_ROOT / "data_processing" / "demo_data"
CONFIGS = REPO_ROOT / "data_processing" / "configs"
BASELINE_NAME = "motif + accessibility baseline"
BASELINE = BaselineConfig(accessibility_track="DNase", central_bins=1, motif_region_bp=400)
RESAMPLING_BLOCK_BP = 10_000
"""Genome per block of the verdicts' bootstrap: a window (1 kb) overlaps its 4 neighbours on each
side, a bound site labels one or two of them, and a promoter or enhancer spans up to a few of
them, so windows 10 kb apart are nearly independent, while the 1.5 Mb of test stretches still
hold about 150 blocks (50 in the smaller one)."""
EPIGENOME_FLOOR = "epigenome logistic regression"
KMER_FLOOR = "4-mer logistic regression"
CNN_PEER = "CNN peer (DNA + epigenome)"
MOTIFS, LINEAR, KMERS = ("EBERT DNA + epigenome + motif tracks", "EBERT DNA + epigenome, linear term",
                         "EBERT DNA + epigenome")
COMPARISONS = (
    Comparison("Does EBERT reach the motif + accessibility baseline?", MOTIFS, BASELINE_NAME),
    Comparison("Do the known-motif tracks help?", MOTIFS, LINEAR),
    Comparison("Do the head's linear term and (a1)'s longer training help?", LINEAR, KMERS),
    Comparison("Does the epigenome help?", KMERS, "EBERT DNA only"),
    Comparison("Does the DNA add to the epigenome?", LINEAR, "EBERT epigenome only"),
    Comparison("Does pre-training help?", MOTIFS, "EBERT DNA + epigenome + motif tracks, from scratch"),
    Comparison("Is EBERT epigenome-only at least the logistic regression on its inputs?", "EBERT epigenome only",
               EPIGENOME_FLOOR),
    Comparison("Is EBERT DNA-only at least the 4-mer logistic regression?", "EBERT DNA only", KMER_FLOOR),
    Comparison("Does EBERT beat the CNN peer on the same inputs?", LINEAR, CNN_PEER),
)
STATE_DIR = ".demo_state"
MARKER = ".ebert_demo"
"""Written into an --output_dir the demo takes (a new or empty folder): only such a folder is
written to, and --fresh deletes only the demo's outputs there."""
OUTPUTS = ("data", "params", "runs", "report", STATE_DIR)
"""What the demo writes under --output_dir (and --fresh removes)."""


def relative(path: Path) -> str:
    """``path`` relative to the working directory when below it (for printed commands)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _sha(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def claim(output_dir: Path, fresh: bool) -> None:
    """Take ``output_dir`` for the demo (create it, or use it if empty or marked as the demo's);
    with ``fresh``, remove the demo's earlier outputs there (symlinks as links, never followed).

    Raises:
        DemoError: the folder holds other files and no demo marker: nothing is touched.
    """
    marker = output_dir / MARKER
    if output_dir.is_symlink() or (output_dir.exists() and not output_dir.is_dir()):
        raise DemoError(f"{output_dir}: not a folder (or a symlink); give a new --output_dir")
    if output_dir.is_dir() and not marker.is_file() and any(output_dir.iterdir()):
        raise DemoError(f"{output_dir}: holds files the demo did not write (no {MARKER} marker); "
                        "give a new or empty --output_dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, "written by python -m ebert_modelzoo.demo; --fresh removes "
                      + ", ".join(OUTPUTS) + " here\n")
    if fresh:
        for name in OUTPUTS:
            remove_owned(output_dir / name, output_dir)


def preprocess(output_dir: Path, progress: bool) -> dict[str, Path]:
    """Build the pre-training and fine-tuning datasets under output_dir/data/ with the shipped
    demo configs (the CLIs' main); returns {kind: folder}."""
    folders = {}
    for kind in ("pretraining", "finetuning"):
        config, folder = CONFIGS / f"demo_{kind}.yaml", output_dir / "data" / kind
        argv = ["--config", str(config), "--output_dir", str(folder)] + ([] if progress else ["--no_progress"])
        LOGGER.info("$ python data_processing/create_%s_data.py %s", kind, " ".join(
            [argv[0], relative(config), argv[2], relative(folder)] + argv[4:]))
        if preprocess_main(kind, argv) != 0:
            raise DemoError(f"preprocessing ({kind}) failed")
        folders[kind] = folder
    return folders


def _spans(regions: Sequence[str], contigs: Sequence[str]) -> list[tuple[str, int, int]]:
    """Regions as sorted (contig, start, end), each contig named as the built dataset names it
    (the preprocessing's matching: split.yaml's chrX is the FASTA's X)."""
    spans = []
    for text in regions:
        contig, start, end = parse_region(text)
        spans.append((match_contig(contig, contigs) or contig, start, end))
    return sorted(spans)


def check_split(data: dict[str, Path], split: dict[str, Any]) -> None:
    """Every built dataset covers, per part, the regions demo_data/split.yaml names: the report
    labels the evaluation with split.yaml's regions while the preprocessing configs decide what
    is built, so an edit to one alone would mislabel the report.

    Raises:
        DemoError: naming the config, the part and both region lists.
    """
    for kind, folder in data.items():
        for part, spec in split.items():
            built = json.loads((folder / part / "data_params.json").read_text())
            if _spans(built["regions"], built["contigs"]) != _spans(spec["regions"], built["contigs"]):
                raise DemoError(f"{relative(CONFIGS / f'demo_{kind}.yaml')} builds {part} = "
                                f"{', '.join(built['regions'])} but {relative(DEMO_DATA / 'split.yaml')} names "
                                f"{', '.join(spec['regions'])}: make the two agree")


MODEL_CODE = ("config", "tokenizer.py", "contract", "data", "models", "training",
              "evaluation/predict.py")
"""What decides a training run's result besides its params and data (ebert_modelzoo/...)."""


def code_fingerprint() -> str:
    """Fingerprint of the package code that trains and scores the models: runs made by other
    code are not mixed with new ones."""
    package = REPO_ROOT / "ebert_modelzoo"
    files = sorted(f for name in MODEL_CODE
                   for f in ([package / name] if name.endswith(".py") else (package / name).rglob("*.py")))
    return _sha(*[f"{f.relative_to(package)}\0{f.read_text()}" for f in files])


def data_fingerprint(folder: Path) -> str:
    """Fingerprint of a dataset: its splits' data_params.json (which hold every shard's sha256)."""
    return _sha(*[(folder / split / "data_params.json").read_text() for split in ("train", "validation", "test")])


@dataclass
class RunResult:
    run: Run
    params_file: Path
    fingerprint: str
    command: str
    cached: bool = False
    """The run had finished before (a rerun): nothing was trained now."""


def train(run: Run, output_dir: Path, data: str, code: str, upstream: Optional[RunResult]) -> RunResult:
    """Write the run's params, start it over if its fingerprint (params, ``data`` and ``code``
    fingerprints, upstream run) changed, then train through run.py's main (resuming from the
    newest checkpoint; a finished run trains nothing)."""
    params_file = output_dir / "params" / f"{run.name}.yaml"
    text = params_text(run)
    fingerprint = _sha(text, data, code, upstream.fingerprint if upstream else "")
    model_dir = Path(run.params["trainer"]["init"]["model_dir"])
    state_file = output_dir / STATE_DIR / f"{run.name}.json"
    stored = json.loads(state_file.read_text())["fingerprint"] if state_file.is_file() else None
    if model_dir.exists() and stored is None:
        raise DemoError(f"{model_dir}: exists but the demo has no record of writing it; remove it or use --fresh")
    if model_dir.exists() and stored != fingerprint:
        LOGGER.info("%s: its settings, data, code or starting checkpoint changed; starting it over", run.name)
        remove_owned(model_dir, output_dir)
    atomic_write_text(params_file, text)
    atomic_write_text(state_file, json.dumps({"fingerprint": fingerprint}) + "\n")
    command = f"python run.py CPU -p {relative(params_file)} -m train_and_eval"
    seed = "" if run.seed is None else f", seed {run.seed}"
    LOGGER.info("%s %s (%s), %d steps%s\n$ %s", run.stage, run.title, run.description, run.max_steps, seed, command)
    cached = checkpoint_path(model_dir, run.max_steps).is_file()
    if run_main(["CPU", "-p", str(params_file), "-m", "train_and_eval"]) != 0:
        raise DemoError(f"training run {run.name} failed")
    return RunResult(run, params_file, fingerprint, command, cached)


def _train_job(run_: Run, output_dir: Path, data: str, code: str, upstream: Optional[RunResult],
               threads: int) -> tuple[RunResult, float]:
    """One training run in a worker process, then (fine-tuning) its test-split scores, so that
    scoring overlaps the other runs' training; returns its result and its own seconds."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    torch.set_num_threads(threads)
    began = time.perf_counter()
    result = train(run_, output_dir, data, code, upstream)
    if run_.stage == "fine-tuning":
        predictions(result)
    return result, round(time.perf_counter() - began, 1)


def train_all(runs: list[Run], output_dir: Path, fingerprints: dict[str, str], jobs: int, threads: int
              ) -> tuple[dict[str, RunResult], dict[str, float]]:
    """Every run, up to ``jobs`` at once in worker processes (a run starts once its upstream run
    has finished; of the runs ready, the longest first, so that short runs fill the end); returns
    the results and each run's own seconds."""
    code = code_fingerprint()
    results: dict[str, RunResult] = {}
    seconds: dict[str, float] = {}
    waiting = list(runs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        running: dict[Future, str] = {}
        while waiting or running:
            ready = [r for r in waiting if r.upstream is None or r.upstream in results]
            for run_ in sorted(ready, key=lambda r: -r.max_steps):
                if len(running) >= jobs:
                    break
                kind = "pretraining" if run_.stage == "pre-training" else "finetuning"
                upstream = results.get(run_.upstream) if run_.upstream else None
                running[pool.submit(_train_job, run_, output_dir, fingerprints[kind], code, upstream, threads)] = run_.name
                waiting.remove(run_)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                results[name], seconds[name] = future.result()
    return {r.name: results[r.name] for r in runs}, seconds


def predictions(result: RunResult) -> Predictions:
    """Test-split scores of a finished fine-tuning run (cached beside its checkpoints)."""
    run = result.run
    model_dir = Path(run.params["trainer"]["init"]["model_dir"])
    cache = model_dir / f"predictions_test_step_{run.max_steps}.npz"
    if cache.is_file():
        return Predictions.load(cache)
    LOGGER.info("scoring the test split with %s\n$ python -m ebert_modelzoo.evaluation.predict -p %s --out %s",
                run.name, relative(result.params_file), relative(cache))
    found = predict(load_params(result.params_file), result.params_file,
                    checkpoint=checkpoint_path(model_dir, run.max_steps))
    found.save(cache)
    return found


def baseline(finetuning: Path, train_cells: Sequence[str], test_cells: Sequence[str]) -> VariantScores:
    """The motif + accessibility baseline, fitted on the training split, scored on the test split."""
    LOGGER.info("fitting the %s (DNase over the central bin x JASPAR motif score)", BASELINE_NAME)
    fitted, scores = run_baseline(finetuning / "train", finetuning / "test", load_motifs(DEMO_DATA / "motifs.json"),
                                  BASELINE, list(train_cells), list(test_cells))
    coefficients = ", ".join(f"{tf}: " + " ".join(f"{k} {v:+.2f}" for k, v in c.items())
                             for tf, c in fitted.coefficients.items())
    return VariantScores.of(BASELINE_NAME, scores,
                            f"(d) per-TF logistic regression; standardised coefficients {coefficients}")


def variant(result: RunResult, found: Predictions) -> VariantScores:
    """A fine-tuning run's test scores as a report variant."""
    return VariantScores.of(result.run.title, found, f"{result.run.description}; {result.run.max_steps} steps",
                            seed=result.run.seed)


LOSS_NAMES = {"pre-training": "masked-token (+ masked-state) cross-entropy", "fine-tuning": "binary cross-entropy"}


def curves(results: Sequence[RunResult]) -> list[TrainingCurve]:
    """Training loss of every run from its JSONL log, with its validation loss at each evaluation
    (model_dir/eval/metrics_step_<N>.json)."""
    out = []
    for r in results:
        model_dir = Path(r.run.params["trainer"]["init"]["model_dir"])
        curve = read_training_curve(train_log_path(model_dir), r.run.title, r.run.stage)
        points = sorted((int(f.stem.rsplit("_", 1)[1]), json.loads(f.read_text())["loss"])
                        for f in (model_dir / "eval").glob("metrics_step_*.json"))
        steps, losses = (np.array([p[i] for p in points], dtype=float) for i in (0, 1))
        out.append(replace(curve, loss_name=LOSS_NAMES[r.run.stage], validation_steps=steps, validation_losses=losses,
                           seed=r.run.seed))
    return out


def floors(finetuning: Path, train_cells: Sequence[str], test_cells: Sequence[str],
           tracks: Sequence[str]) -> list[VariantScores]:
    """The sanity floors (floor_baselines.py): logistic regressions on EBERT epigenome-only's and
    DNA-only's inputs, fitted on the training split, scored on the test split."""
    out = []
    for name, inputs, what in ((EPIGENOME_FLOOR, "epigenome", f"the {', '.join(tracks)} tracks, their presence and "
                                "the one-hot states of every bin"),
                               (KMER_FLOOR, "kmer", "the window's 4-mer counts, reverse complements merged")):
        LOGGER.info("fitting the %s (floor)", name)
        scores = run_floor(finetuning / "train", finetuning / "test", inputs, train_cells, test_cells, tracks)
        out.append(VariantScores.of(name, scores, f"floor: per-TF L2 logistic regression on {what}"))
    return out


def cnn_peer(finetuning: Path, train_cells: Sequence[str], test_cells: Sequence[str], tracks: Sequence[str],
             seeds: Sequence[int], steps: int) -> list[VariantScores]:
    """The CNN peer (cnn_peer.py) trained with each seed for ``steps`` steps and scored on the test split."""
    out = []
    for seed in seeds:
        LOGGER.info("training the %s, seed %d, %d steps", CNN_PEER, seed, steps)
        scores = run_cnn_peer(finetuning / "train", finetuning / "test", train_cells, test_cells, tracks,
                              CNNConfig(steps=steps, seed=seed))
        out.append(VariantScores.of(CNN_PEER, scores, "peer: DeepBind/FactorNet-like CNN on one-hot DNA + the per-bin "
                                    f"epigenome, reverse-complement augmentation and strand-averaged scores; {steps} "
                                    "steps of 16", seed=seed))
    return out


def block_windows(finetuning: Path) -> int:
    """Test windows per bootstrap block: RESAMPLING_BLOCK_BP of genome at the test split's stride."""
    stride = int(json.loads((finetuning / "test" / "data_params.json").read_text())["stride"])
    return max(1, RESAMPLING_BLOCK_BP // stride)


def region_windows(finetuning: Path, regions: Sequence[str]) -> tuple[int, ...]:
    """Test windows in each of ``regions`` (split.yaml's, in its order), for the report's
    per-region breakdown, which needs the shards to hold the regions one after the other.

    Raises:
        DemoError: a window outside every region, or the windows not in the regions' order.
    """
    params = load_data_params(finetuning / "test")
    chrom, start = window_coordinates(params)
    contig_of = np.asarray(params.raw["contigs"])[chrom]
    which = np.full(start.size, -1)
    for i, text in enumerate(regions):
        contig, first, end = parse_region(text)
        contig = match_contig(contig, params.raw["contigs"]) or contig
        which[(contig_of == contig) & (start >= first) & (start < end)] = i
    if np.any(which < 0) or np.any(np.diff(which) < 0):
        raise DemoError(f"{params.path}: the test windows do not hold the regions {', '.join(regions)} one after "
                        "the other")
    return tuple(int(n) for n in np.bincount(which, minlength=len(regions)))


def report(output_dir: Path, variants: Sequence[VariantScores], evaluation: EvaluationSet,
           training_curves: Sequence[TrainingCurve], extra: dict[str, Any]) -> ReportFiles:
    """Write output_dir/report (results.md, results.json, PNGs)."""
    return write_report(output_dir / "report", variants, evaluation, training_curves, COMPARISONS, extra=extra)


INTERPRET_ISM_WINDOWS = 8
"""Bound windows per TF that ISM attributes for a run fed motif tracks (3 forward passes per base;
``--quick``: 2, over the labelled centre only)."""
INTERPRET_ISM_FLANK_BP = 100
"""ISM covers the labelled centre of each window and this much on either side (a bound window's site
lies within about 60 bp of it). With 64 bp, TF-MoDISco failed to cluster one TF's ISM seqlets (NaN
similarities); 100 bp recovered all four."""


def interpretation(output_dir: Path, results: Sequence[RunResult], finetuning: Path, cell_type: str, quick: bool,
                   progress: bool, threads: int) -> str:
    """The report's known-truth section for fine-tuning runs, scored with ``threads`` torch
    threads (the cores the training runs shared; needs the ``interpret`` extra; without it, or
    when the checks find nothing to check, the section is left out)."""
    try:
        from ebert_modelzoo.interpret.report_section import demo_section
    except ImportError as err:
        LOGGER.warning("report section on attributions skipped: %s (pip install -e '.[interpret]')", err)
        return ""
    tfs = list(results[0].run.params["trainer"]["fit"]["train_dataloader"]["labels"])
    LOGGER.info("checking what %s learned against the simulation's truth (%s in %s)",
                ", ".join(r.run.name for r in results), ", ".join(tfs), cell_type)
    center = int(json.loads((finetuning / "test" / "data_params.json").read_text())["labels"]["center_bp"])
    # "(a)", "(a0)": the variant's letter, as its description starts
    runs = [(r.run.description.split(" ")[0], r.params_file) for r in results]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return demo_section(output_dir / "report", runs, finetuning / "test", DEMO_DATA / "motifs.json", cell_type,
                            tfs, ism_windows=2 if quick else INTERPRET_ISM_WINDOWS,
                            ism_span_bp=center if quick else center + 2 * INTERPRET_ISM_FLANK_BP,
                            quick=quick, progress=progress)
    finally:
        torch.set_num_threads(before)


def summary(files: ReportFiles, seconds: float) -> str:
    """The console summary: mean metrics per variant, auPRC per TF, the verdict, where the report is."""
    results = json.loads(files.results_json.read_text())
    tfs = [tf for tf in results["variants"][0]["metrics"] if tf != "mean"]
    width = max(len(v["name"]) for v in results["variants"])

    def cell(value: Optional[float]) -> str:
        return "  n/a" if value is None else f"{value:5.3f}"

    head = f"{'variant':<{width}}  auROC  auPRC  R@10%  R@50% | auPRC " + " ".join(f"{tf:>5}" for tf in tfs)
    lines = ["", f"EBERT demo: test split ({results['evaluation']['samples']} windows of "
                 f"{', '.join(results['evaluation']['cell_types'])}, {', '.join(results['evaluation']['regions'])})",
             head, "-" * len(head)]
    for v in results["variants"]:
        m = v["metrics"]
        lines.append(f"{v['name']:<{width}}  {cell(m['mean']['auroc'])}  {cell(m['mean']['auprc'])}  "
                     f"{cell(m['mean']['recall_at_10_fdr'])}  {cell(m['mean']['recall_at_50_fdr'])} |       "
                     + " ".join(cell(m[tf]['auprc']) for tf in tfs))
    chance = " ".join(f"{tf} {c['bound'] / max(c['labelled'], 1):.3f}" for tf, c in results["evaluation"]["labels"].items())
    lines += ["(means over TFs; R@x% = recall at x% FDR; auPRC of a random guess: " + chance + ")", "",
              results["verdict"], "",
              f"Report: {relative(files.folder)}/ (results.md, results.json, "
              + ", ".join(p.name for p in files.plots) + f"); whole run {seconds / 60:.1f} min"]
    return "\n".join(lines)

