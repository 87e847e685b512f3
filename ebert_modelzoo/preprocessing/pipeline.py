"""Orchestration: check every input, build the shards (workers, machines), write data_params.json.

Order of a run: (1) read and check all inputs (FASTA, bigWig headers, blacklist, labels,
segmentation BEDs), so bad input stops the run before anything is written under the output folder
(then ``<output_dir>/.cache``: input hashes, parsed segmentations, see ``segmentation_store``); (2) build this machine's shards
(``--shard I/N`` takes the tasks with ``task_number % N == I``), skipping finished ones; (3) when
every shard of every split is finished, write vocab.txt and, last, data_params.json per split.
Normalisation statistics always come from the train split.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from tqdm import tqdm

from ebert_modelzoo.atomic import tmp_pattern
from ebert_modelzoo.contract import schema
from ebert_modelzoo.contract.data_params import data_params_header
from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.bed_regions import SplitWindows, region_windows
from ebert_modelzoo.preprocessing.config import PreprocessingConfig
from ebert_modelzoo.preprocessing.genome import Genome
from ebert_modelzoo.preprocessing.labels import DreamLabels, PeakLabels, read_dream_tsv, read_peaks
from ebert_modelzoo.preprocessing.segmentation_store import (StoredSegmentation, commit, discard, entry_key,
                                                             open_segmentation, prune)
from ebert_modelzoo.preprocessing.tracks import TRANSFORMS, BigWigTrack, bin_means
from ebert_modelzoo.preprocessing.windows import Blacklist, Region, ShardTask, parse_splits, shard_tasks
from ebert_modelzoo.preprocessing.writer import (SIDECAR_PATTERN, atomic_write_json, finished_sidecar,
                                                 sha256_file, write_shard, write_sidecar)
from ebert_modelzoo.tokenizer import DNATokenizer

log = logging.getLogger(__name__)

Kind = Literal["pretraining", "finetuning"]
_NON_ACGT = np.ones(256, dtype=bool)
_NON_ACGT[[ord(b) for b in "ACGT"]] = False


@dataclass
class Plan:
    """Everything a worker needs, checked up front; file handles are opened per process."""

    config: PreprocessingConfig
    kind: Kind
    output_dir: Path
    genome_lengths: dict[str, int]
    contigs: list[str]
    regions: dict[str, list[Region]]
    cell_types: list[str]
    track_names: list[str]
    segmentations: list[Optional[StoredSegmentation]]
    num_states: int
    state_names: list[str]
    blacklist: Blacklist
    label_names: list[str] = field(default_factory=list)
    dream: list[Optional[DreamLabels]] = field(default_factory=list)
    peaks: list[dict[str, PeakLabels]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    region_windows: Optional[dict[str, SplitWindows]] = None
    """Windows from regions.bed per split (None: windows tile the split regions)."""
    region_counts: dict[str, int] = field(default_factory=dict)

    @property
    def use_states(self) -> bool:
        return any(s is not None for s in self.segmentations)

    @property
    def use_signal(self) -> bool:
        return bool(self.track_names)


def _input_files(config: PreprocessingConfig) -> list[tuple[str, str]]:
    files = [("genome", config.genome.fasta)]
    if config.windows.blacklist:
        files.append(("blacklist", config.windows.blacklist))
    if config.regions:
        files.append(("regions", config.regions.bed))
    for cell in config.cell_types:
        if cell.segmentation:
            files.append((f"segmentation:{cell.name}", cell.segmentation))
        files.extend((f"track:{cell.name}:{a}", p) for a, p in sorted(cell.tracks.items()))
    if config.labels:
        for tf in config.labels.tfs:
            if tf.dream_tsv:
                files.append((f"labels:{tf.name}", tf.dream_tsv))
            files.extend((f"peaks:{tf.name}:{c}", p) for c, p in sorted(tf.peaks.items()))
    return files


def _checksums(files: list[tuple[str, str]], cache: dict[str, str]) -> list[dict[str, Any]]:
    """Size and sha256 of each input. ``cache`` (updated) maps a file's identity to its hash: path,
    device, inode, size, mtime and ctime, so a file edited in place is hashed again even when its
    size and mtime were kept (nothing but the kernel sets ctime)."""
    out = []
    for role, path in files:
        st = os.stat(path)
        key = f"{path}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"
        if key not in cache:
            cache[key] = sha256_file(path)
        out.append({"role": role, "path": path, "size": st.st_size, "sha256": cache[key]})
    return out


def _read_cache(path: Path) -> dict[str, str]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, or damaged: hashes are recomputed
        return {}
    return cache if isinstance(cache, dict) else {}


def _segmentation_root(output_dir: Path) -> Path:
    """Where the parsed segmentations of a run are stored (see ``segmentation_store``)."""
    return output_dir / ".cache" / "segmentations"


def make_plan(config: PreprocessingConfig, kind: Kind, output_dir: Optional[str] = None) -> Plan:
    """Read and check every input named by ``config``; raises InputError on the first problem.

    Nothing is written under the output folder before every input has passed: the input hashes
    and newly parsed segmentations (parsed into a private folder) go into ``.cache`` at the end.
    """
    output_dir = Path(output_dir or config.output.output_dir)
    genome = Genome(config.genome.fasta, config.genome.build_index)
    lengths = genome.lengths
    for _, path in _input_files(config):
        if not Path(path).is_file():
            raise InputError(f"{path}: file not found")
    regions = parse_splits(
        {"train": config.split.train, "validation": config.split.validation, "test": config.split.test},
        genome.names, lengths,
    ) if config.split else {s: [] for s in schema.SPLITS}
    used = {r.contig for rs in regions.values() for r in rs}
    windows, counts = None, {}
    if config.regions:
        w = config.windows
        windows, counts = region_windows(config.regions, w.window_length, w.stride, genome.names, lengths,
                                         regions if config.split else None)
        used = {c for sw in windows.values() for c in sw.contigs}
        if not len(windows["train"].starts):
            raise InputError(f"{config.regions.bed}: no window falls in the train split ({counts})")
    contigs = [c for c in genome.names if c in used]
    # index layout and every base the splits read, before anything is written
    genome.check((r.contig, r.start, r.end) for rs in regions.values() for r in rs)
    if windows:
        length = config.windows.window_length
        genome.check((c, int(s), int(s) + length) for sw in windows.values() for c, s in zip(sw.contigs, sw.starts))
    cell_types = [c.name for c in config.cell_types]
    track_names = config.signal.tracks or sorted({a for c in config.cell_types for a in c.tracks})
    for cell in config.cell_types:
        for assay in cell.tracks:
            if assay not in track_names:
                raise InputError(f"cell_types[{cell.name}].tracks.{assay}: not in signal.tracks {track_names}")
        for path in cell.tracks.values():
            BigWigTrack(path, lengths)  # header, build and truncation checks
    cache_path = output_dir / ".cache" / "checksums.json"
    cache = _read_cache(cache_path)
    inputs = _checksums(_input_files(config), cache)
    blacklist = Blacklist(config.windows.blacklist, lengths)
    label_names, dreams, peaks = [], [], []
    for tf in (config.labels.tfs if config.labels else []):
        label_names.append(tf.name)
        dream = read_dream_tsv(tf.dream_tsv, lengths, used) if tf.dream_tsv else None
        for cell in (dream.cell_types if dream else []):
            if cell not in cell_types:
                raise InputError(f"{tf.dream_tsv}: cell type {cell!r} is not in the config's cell_types {cell_types}")
        for cell in tf.peaks:
            if cell not in cell_types:
                raise InputError(f"labels.tfs[{tf.name}].peaks: cell type {cell!r} is not in cell_types {cell_types}")
        dreams.append(dream)
        peaks.append({cell: read_peaks(p, lengths) for cell, p in tf.peaks.items()})
    segmentations = _segmentations(config, inputs, lengths, output_dir)
    names: dict[int, str] = {}
    for seg in segmentations:
        for state, name in (seg.state_names.items() if seg else ()):
            if names.setdefault(state, name) != name:
                raise InputError(f"{seg.path}: state {state} is named {name!r}, another BED names it {names[state]!r}")
    num_states = config.chromatin_states.num_states or max(names, default=0)
    if names and max(names) > num_states:
        raise InputError(f"chromatin_states.num_states is {num_states} but a BED has state {max(names)}")
    return _checked_plan(Plan(
        config=config, kind=kind,
        output_dir=output_dir,
        genome_lengths=lengths, contigs=contigs, regions=regions,
        cell_types=cell_types, track_names=track_names,
        segmentations=segmentations, num_states=num_states,
        state_names=[names.get(s, str(s)) for s in range(1, num_states + 1)],
        blacklist=blacklist, label_names=label_names + list(config.regions.label_columns if config.regions else ()),
        dream=dreams, peaks=peaks, inputs=inputs, region_windows=windows, region_counts=counts,
    ), cache, cache_path)


def _segmentations(config: PreprocessingConfig, inputs: list[dict[str, Any]], lengths: dict[str, int],
                   output_dir: Path) -> list[Optional[StoredSegmentation]]:
    """Each cell type's stored segmentation (None without one); a bad BED discards the entries
    this run has parsed so far."""
    sha = {i["role"]: i["sha256"] for i in inputs}
    found: list[Optional[StoredSegmentation]] = []
    try:
        for cell in config.cell_types:
            found.append(open_segmentation(cell.segmentation, sha[f"segmentation:{cell.name}"], lengths,
                                           _segmentation_root(output_dir)) if cell.segmentation else None)
    except InputError:
        for seg in found:
            if seg is not None:
                discard(seg)
        raise
    return found


def _checked_plan(plan: Plan, cache: dict[str, str], cache_path: Path) -> Plan:
    """Every input has passed: store the new segmentation entries and the input hashes, and
    fingerprint the plan."""
    for seg in plan.segmentations:
        if seg is not None:
            commit(seg)
    atomic_write_json(cache_path, cache)
    plan.settings = plan.config.model_dump(mode="json")
    plan.settings["output"].pop("output_dir")  # where the data lies is not part of what it is
    plan.fingerprint = hashlib.sha256(
        json.dumps({"kind": plan.kind, "config": plan.settings, "inputs": plan.inputs}, sort_keys=True).encode()
    ).hexdigest()
    return plan


# ---------------------------------------------------------------------------------------------
# building one shard (runs in worker processes)

_PLAN: Optional[Plan] = None
_HANDLES: dict[str, Any] = {}


def _handles() -> dict[str, Any]:
    """Per-process FASTA/bigWig handles (never shared across a fork: they hold file offsets)."""
    if _HANDLES.get("pid") != os.getpid():
        _HANDLES.clear()
        cfg = _PLAN.config
        _HANDLES["pid"] = os.getpid()
        _HANDLES["genome"] = Genome(cfg.genome.fasta, cfg.genome.build_index)
        _HANDLES["tracks"] = {(c.name, a): BigWigTrack(p, _PLAN.genome_lengths, announce=False)
                              for c in cfg.cell_types for a, p in c.tracks.items()}
    return _HANDLES


def _tokens(plan: Plan, genome: Genome, contig: str, span_start: int, seq: np.ndarray,
            starts: np.ndarray) -> np.ndarray:
    tokenizer = DNATokenizer(plan.config.tokenizer.k)
    length = plan.config.windows.window_length
    try:
        ids = tokenizer.encode(seq.tobytes())
    except ValueError as err:
        pos = int(str(err).rsplit(" ", 1)[-1])
        w, off = divmod(pos, length)
        raise InputError(f"{genome.path}: {contig}:{int(starts[w]) + off}: {str(err).rsplit(' at ', 1)[0]}") from None
    return ids.reshape(len(starts), length // tokenizer.k)


def build_shard(task: ShardTask) -> dict[str, Any]:
    """Build one shard and its sidecar; returns the sidecar record."""
    plan = _PLAN
    cfg = plan.config
    h = _handles()
    length, bin_size = cfg.windows.window_length, cfg.windows.bin_size
    n_bins, n_cells, n_tracks = length // bin_size, len(plan.cell_types), len(plan.track_names)
    transform = TRANSFORMS[cfg.signal.transform]
    split_dir = plan.output_dir / task.split
    contig_idx = {c: i for i, c in enumerate(plan.contigs)}

    chroms, starts_out, tokens, states, signal, labels, bin_labels = [], [], [], [], [], [], []
    dropped_n = dropped_black = 0
    n_inf = np.zeros(n_tracks, dtype=np.int64)
    all_starts = np.asarray(task.starts, dtype=np.int64)
    all_labels = (np.asarray(task.labels, dtype=np.int8).reshape(len(all_starts), -1) if task.labels
                  else np.zeros((len(all_starts), 0), dtype=np.int8))
    for contig, run in _runs(task.contigs, all_starts):
        starts, column_labels = all_starts[run], all_labels[run]
        span_start, span_end = int(starts[0]), int(starts[-1]) + length
        offsets = (starts - span_start)[:, None] + np.arange(length)  # (W, L) into the span
        seq = np.frombuffer(h["genome"].fetch(contig, span_start, span_end), dtype=np.uint8)[offsets]
        too_many_n = _NON_ACGT[seq].mean(axis=1) > cfg.windows.max_n_fraction
        black = plan.blacklist.overlaps(contig, starts, length) & ~too_many_n
        keep = ~too_many_n & ~black
        dropped_n += int(too_many_n.sum())
        dropped_black += int(black.sum())
        if not keep.any():
            continue
        starts, offsets, seq, column_labels = starts[keep], offsets[keep], seq[keep], column_labels[keep]
        chroms.append(np.full(len(starts), contig_idx[contig], dtype=np.int32))
        starts_out.append(starts)
        tokens.append(_tokens(plan, h["genome"], contig, span_start, seq, starts))
        bin_starts = starts[:, None] + np.arange(n_bins) * bin_size  # (W, N)
        if plan.use_states:
            states.append(np.stack([
                seg.states_at(contig, bin_starts + bin_size // 2) if seg else np.zeros(bin_starts.shape, np.uint8)
                for seg in plan.segmentations]))  # (C, W, N)
        if plan.use_signal:
            sig = np.full((n_cells, len(starts), n_bins, n_tracks), np.nan, dtype=np.float64)
            for c, cell in enumerate(plan.cell_types):
                for t, assay in enumerate(plan.track_names):
                    track = h["tracks"].get((cell, assay))
                    if track is None:
                        continue
                    values, inf = track.values(contig, span_start, span_end)
                    n_inf[t] += inf
                    with np.errstate(invalid="ignore", divide="ignore"):
                        sig[c, :, :, t] = transform(bin_means(values[offsets], bin_size))
            signal.append(sig)
        if plan.label_names:
            center_bp = cfg.labels.center_bp if cfg.labels else length
            window_labels = _labels(plan, contig, starts[:, None], starts[:, None] + length, center_bp)  # (C, W, 1, K)
            if column_labels.shape[1]:
                window_labels[..., 0, len(plan.dream):] = column_labels
            labels.append(window_labels)
            if cfg.labels and cfg.labels.bin_labels:
                bin_labels.append(_labels(plan, contig, bin_starts, bin_starts + bin_size, bin_size))

    num_windows = sum(len(s) for s in starts_out)
    record: dict[str, Any] = {
        "index": task.index, "file": None, "num_windows": num_windows, "sha256": None,
        "fingerprint": plan.fingerprint, "candidates": len(task.starts),
        "dropped_n": dropped_n, "dropped_blacklist": dropped_black,
    }
    if plan.use_signal:
        stored = (np.concatenate(signal, axis=1) if signal else np.zeros((n_cells, 0, n_bins, n_tracks))).astype(np.float16)
        finite = np.isfinite(stored)
        values64 = np.where(finite, stored, 0).astype(np.float64)
        stored[~finite] = np.nan
        record["signal_stats"] = {
            "count": finite.sum(axis=(0, 1, 2)).tolist(),
            "sum": values64.sum(axis=(0, 1, 2)).tolist(),
            "sumsq": (values64 ** 2).sum(axis=(0, 1, 2)).tolist(),
            "missing_bins": (~finite).sum(axis=(0, 1, 2)).tolist(),
            "nonfinite_values": n_inf.tolist(),
        }
    if num_windows:
        arrays = {
            schema.DATASET_WINDOW_CHROM: np.concatenate(chroms),
            schema.DATASET_WINDOW_START: np.concatenate(starts_out),
            schema.DATASET_TOKENS: np.concatenate(tokens),
        }
        axis = {schema.DATASET_WINDOW_CHROM: 0, schema.DATASET_WINDOW_START: 0, schema.DATASET_TOKENS: 0}
        if plan.use_states:
            arrays[schema.DATASET_STATES], axis[schema.DATASET_STATES] = np.concatenate(states, axis=1), 1
        if plan.use_signal:
            arrays[schema.DATASET_SIGNAL], axis[schema.DATASET_SIGNAL] = stored, 1
        if plan.label_names:
            arrays[schema.DATASET_LABELS], axis[schema.DATASET_LABELS] = np.concatenate(labels, axis=1)[:, :, 0, :], 1
            if cfg.labels and cfg.labels.bin_labels:
                arrays[schema.DATASET_BIN_LABELS] = np.concatenate(bin_labels, axis=1)
                axis[schema.DATASET_BIN_LABELS] = 1
        record["sha256"] = write_shard(split_dir, task.index, arrays, axis, cfg.output.compression,
                                       cfg.output.chunk_windows)
        record["file"] = schema.SHARD_PATTERN.format(index=task.index)
    write_sidecar(split_dir, task.index, record)
    return record


def _labels(plan: Plan, contig: str, r_start: np.ndarray, r_end: np.ndarray, width: int) -> np.ndarray:
    """Labels (int8 [C, W, R, K]) of the central ``width`` bases of each range ``[r_start, r_end)``."""
    lo = r_start + (r_end - r_start - width) // 2
    hi = lo + width
    out = np.full((len(plan.cell_types),) + r_start.shape + (len(plan.label_names),),
                  schema.LABEL_AMBIGUOUS, dtype=np.int8)
    for k in range(len(plan.dream)):  # label files; BED-column labels follow them
        dream, peaks = plan.dream[k], plan.peaks[k]
        for c, cell in enumerate(plan.cell_types):
            if dream is not None and cell in dream.cell_types:
                out[c, ..., k] = dream.label(cell, contig, lo.ravel(), hi.ravel()).reshape(lo.shape)
            elif cell in peaks:
                out[c, ..., k] = peaks[cell].label(contig, lo.ravel(), hi.ravel()).reshape(lo.shape)
    return out


# ---------------------------------------------------------------------------------------------
# the run


def _runs(contigs: tuple[str, ...], starts: np.ndarray, max_gap: int = 1 << 16) -> list[tuple[str, np.ndarray]]:
    """Index arrays of a shard's windows read in one span each: consecutive windows on one contig
    less than ``max_gap`` bp apart (tiled windows give one run per contig; sparse regions many)."""
    names = np.asarray(contigs)
    cut = np.flatnonzero((names[1:] != names[:-1]) | (starts[1:] - starts[:-1] > max_gap) |
                         (starts[1:] < starts[:-1])) + 1
    bounds = np.r_[0, cut, len(starts)]
    return [(str(names[a]), np.arange(a, b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _all_tasks(plan: Plan) -> list[ShardTask]:
    w = plan.config.windows
    if plan.region_windows is not None:
        n = plan.config.output.windows_per_shard
        return [ShardTask(split, i // n, tuple(sw.contigs[i:i + n]), tuple(int(x) for x in sw.starts[i:i + n]),
                          tuple(map(tuple, sw.labels[i:i + n].tolist())))
                for split in schema.SPLITS for sw in [plan.region_windows[split]]
                for i in range(0, len(sw.starts), n)]
    return [t for split in schema.SPLITS
            for t in shard_tasks(split, plan.regions[split], w.window_length, w.stride,
                                 plan.config.output.windows_per_shard)]


def _check_output_dir(plan: Plan) -> None:
    for split in schema.SPLITS:
        for sidecar in (plan.output_dir / split).glob(".shard-*.json"):
            try:
                fingerprint = json.loads(sidecar.read_text()).get("fingerprint")
            except json.JSONDecodeError:
                continue
            if fingerprint != plan.fingerprint:
                raise InputError(f"{plan.output_dir}: holds shards built from another config or other inputs; "
                                 "use a new output_dir or delete it")


def _remove_shard_tmps(plan: Plan, task: ShardTask) -> None:
    """Remove the temporaries of ``task``'s shard (the lock on this part makes them this run's,
    or left by a killed one)."""
    for tmp in (plan.output_dir / task.split).glob(tmp_pattern(schema.SHARD_PATTERN.format(index=task.index))):
        tmp.unlink(missing_ok=True)


def run(plan: Plan, workers: int = 1, shard: tuple[int, int] = (0, 1), progress: bool = True) -> bool:
    """Build this machine's shards, then data_params.json if every shard exists.

    Returns:
        True when the dataset is complete (data_params.json written for every split).
    """
    global _PLAN
    _PLAN = plan
    _check_output_dir(plan)
    prune(_segmentation_root(plan.output_dir),
          keep={entry_key(i["sha256"], plan.genome_lengths) for i in plan.inputs if i["role"].startswith("segmentation:")},
          owner=plan.output_dir)
    tasks = _all_tasks(plan)
    mine = [t for n, t in enumerate(tasks) if n % shard[1] == shard[0]]
    for split in schema.SPLITS:
        (plan.output_dir / split).mkdir(parents=True, exist_ok=True)
    for t in mine:  # leftovers of a killed run
        _remove_shard_tmps(plan, t)
    todo = [t for t in mine if finished_sidecar(plan.output_dir / t.split, t.index, plan.fingerprint) is None]
    if len(todo) < len(mine):
        log.info("skipping %d finished shards", len(mine) - len(todo))
    step = min(plan.config.windows.stride, plan.config.windows.window_length)
    bar = tqdm(total=sum(len(t.starts) for t in todo) * step, unit="bp", unit_scale=True,
               desc="preprocessing", disable=not progress or not todo)
    try:
        if workers > 1 and len(todo) > 1:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for record in pool.imap_unordered(build_shard, todo):
                    bar.update(record["candidates"] * step)
        else:
            for task in todo:
                bar.update(build_shard(task)["candidates"] * step)
    finally:
        bar.close()
        for t in todo:
            _remove_shard_tmps(plan, t)
    return _finish(plan, tasks)


def _finish(plan: Plan, tasks: list[ShardTask]) -> bool:
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in schema.SPLITS}
    for t in tasks:
        sidecar = plan.output_dir / t.split / SIDECAR_PATTERN.format(index=t.index)
        if not sidecar.is_file():
            log.info("%s: not every shard is built yet (e.g. %s); data_params.json is written by the run "
                     "that finishes the last one", plan.output_dir, sidecar.name)
            return False
        records[t.split].append(json.loads(sidecar.read_text()))
    stats = _train_stats(plan, records["train"]) if plan.use_signal else None
    tokenizer = DNATokenizer(plan.config.tokenizer.k)
    for split in schema.SPLITS:
        if not _has_split(plan, split):
            continue
        split_dir = plan.output_dir / split
        tokenizer.save_vocab(split_dir / schema.VOCAB_FILE)
        atomic_write_json(split_dir / schema.DATA_PARAMS_FILE, _data_params(plan, split, records[split], stats, tokenizer))
    log.info("wrote %s", ", ".join(str(plan.output_dir / s) for s in schema.SPLITS if _has_split(plan, s)))
    return True


def _has_split(plan: Plan, split: str) -> bool:
    if plan.region_windows is not None:
        return len(plan.region_windows[split].starts) > 0
    return bool(plan.regions[split])


def _train_stats(plan: Plan, records: list[dict[str, Any]]) -> dict[str, list[float]]:
    count = np.zeros(len(plan.track_names))
    total = np.zeros(len(plan.track_names))
    total_sq = np.zeros(len(plan.track_names))
    for r in records:
        count += r["signal_stats"]["count"]
        total += r["signal_stats"]["sum"]
        total_sq += r["signal_stats"]["sumsq"]
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    var = np.where(count > 0, total_sq / np.maximum(count, 1) - mean ** 2, 1.0)
    std = np.sqrt(np.maximum(var, 0.0))
    std = np.where(std > 0, std, 1.0)
    return {"mean": mean.tolist(), "std": std.tolist(), "count": count.astype(int).tolist()}


def _data_params(plan: Plan, split: str, records: list[dict[str, Any]], stats: Optional[dict[str, list[float]]],
                 tokenizer: DNATokenizer) -> dict[str, Any]:
    cfg = plan.config
    w = cfg.windows
    params = data_params_header(
        kind=plan.kind,
        split=split,
        shards=[{"file": r["file"], "num_windows": r["num_windows"], "sha256": r["sha256"]}
                for r in records if r["num_windows"]],
        contigs=plan.contigs,
        regions=[f"{r.contig}:{r.start}-{r.end}" for r in plan.regions[split]],
        window_length=w.window_length,
        stride=w.stride,
        bin_size=w.bin_size,
        k=tokenizer.k,
        vocab_size=tokenizer.vocab_size,
        cell_types=plan.cell_types,
        chromatin_states=({"num_states": plan.num_states, "names": plan.state_names,
                           "bin_rule": "state of the segment covering the bin midpoint; 0 if none"}
                          if plan.use_states else None),
        tracks=None,
        labels=None,
    )
    params["filters"] = {
        "candidate_windows": sum(r["candidates"] for r in records),
        "dropped_n_fraction": sum(r["dropped_n"] for r in records),
        "dropped_blacklist": sum(r["dropped_blacklist"] for r in records),
        "max_n_fraction": w.max_n_fraction,
        **plan.region_counts,
    }
    if cfg.regions:
        params["windows_from"] = {"bed": cfg.regions.bed, "windows": cfg.regions.windows,
                                  "split": "column" if cfg.regions.split_column is not None else "split regions"}
    if plan.use_signal:
        params["tracks"] = {
            "names": plan.track_names,
            "transform": cfg.signal.transform,
            "mean": stats["mean"],
            "std": stats["std"],
            "stats_split": "train",
            "stats_count": stats["count"],
            "missing_bins": np.sum([r["signal_stats"]["missing_bins"] for r in records], axis=0).astype(int).tolist()
            if records else [0] * len(plan.track_names),
            "nonfinite_values": np.sum([r["signal_stats"]["nonfinite_values"] for r in records], axis=0).astype(int).tolist()
            if records else [0] * len(plan.track_names),
            "stored": "transformed, not normalised: a reader computes (x - mean) / std; NaN = missing",
        }
    if plan.label_names:
        params["labels"] = {
            "names": plan.label_names,
            "center_bp": cfg.labels.center_bp if cfg.labels else None,
            "bin_labels": bool(cfg.labels and cfg.labels.bin_labels),
            "rule": "DREAM TSV: B inside the central region -> 1, else A -> -1, else U -> 0, none -> -1; "
                    "peaks: summit inside -> 1, else peak overlap -> -1, else 0; "
                    "BED label columns: the region's value (1, 0, -1/empty/NA -> -1) for every cell type",
        }
    params["provenance"] = {"inputs": plan.inputs, "config": plan.settings}
    return params
