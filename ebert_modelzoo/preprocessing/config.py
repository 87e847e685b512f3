"""The preprocessing config (one YAML file per dataset build). Relative paths in the file are
resolved against the folder holding the YAML file, so a config and its inputs can move together."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import model_validator

from ebert_modelzoo.config_base import ParamsError, StrictConfig, parse_section, read_yaml
from ebert_modelzoo.tokenizer import MAX_K


class GenomeConfig(StrictConfig):
    fasta: str
    """Genome FASTA, plain or bgzipped; its .fai index (and .gzi for bgzip) must sit beside it."""
    build_index: bool = False
    """Build a missing .fai index next to the FASTA instead of stopping with an error."""


class SplitConfig(StrictConfig):
    """Regions per split: a contig name ("chr8") or a range ("chrX:40,000,000-45,000,000", 0-based
    half-open, commas allowed). Splits must not overlap; windows never cross a region's end."""

    train: list[str]
    """Regions of the training split."""
    validation: list[str] = []
    """Regions of the validation split."""
    test: list[str] = []
    """Regions of the test split."""


class WindowConfig(StrictConfig):
    window_length: int = 1000
    """Window (sample) length in bp; a multiple of bin_size."""
    stride: int = 1000
    """Distance in bp between consecutive window starts (< window_length: overlapping windows)."""
    bin_size: int = 200
    """Epigenome bin size in bp (200 for ChromHMM/Roadmap); a multiple of tokenizer.k."""
    max_n_fraction: float = 0.1
    """Windows whose fraction of non-ACGT bases exceeds this are dropped."""
    blacklist: Optional[str] = None
    """BED of excluded regions (e.g. the ENCODE blacklist); windows overlapping one are dropped."""

    @model_validator(mode="after")
    def _check(self) -> "WindowConfig":
        for key in ("window_length", "stride", "bin_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.window_length % self.bin_size:
            raise ValueError(
                f"window_length ({self.window_length}) must be a multiple of bin_size ({self.bin_size})"
            )
        if not 0.0 <= self.max_n_fraction <= 1.0:
            raise ValueError(f"max_n_fraction must be in [0, 1], got {self.max_n_fraction}")
        return self


class TokenizerConfig(StrictConfig):
    k: int = 1
    """k-mer length (1..6); tokens are non-overlapping k-mers, bin_size must be a multiple of k."""


class CellTypeConfig(StrictConfig):
    name: str
    """Cell-type name as the labels files spell it (e.g. "K562" or "E123")."""
    segmentation: Optional[str] = None
    """ChromHMM dense segmentation BED (chrom start end state ...), state ids = the leading number."""
    tracks: dict[str, str] = {}
    """Signal bigWigs by assay name (e.g. {DNase: k562.dnase.bw}); absent assays are stored as missing."""


class StatesConfig(StrictConfig):
    num_states: Optional[int] = None
    """States of the segmentation model (e.g. 15); default: the largest state id in the BEDs."""


class SignalConfig(StrictConfig):
    transform: Literal["log1p", "arcsinh", "none"] = "arcsinh"
    """Applied to each bin's mean signal before storing; mean/std are of transformed values."""
    tracks: Optional[list[str]] = None
    """Assay names in the order of the T axis (default: sorted union over the cell types)."""


class TFLabelConfig(StrictConfig):
    name: str
    """Label name (the K axis), e.g. the TF "CTCF"."""
    dream_tsv: Optional[str] = None
    """ENCODE-DREAM label TSV (chr start stop, then one U/A/B column per cell type), plain or .gz."""
    peaks: dict[str, str] = {}
    """narrowPeak/BED positives by cell type (used for cell types the TSV lacks)."""

    @model_validator(mode="after")
    def _check(self) -> "TFLabelConfig":
        if self.dream_tsv is None and not self.peaks:
            raise ValueError(f"label {self.name!r} needs dream_tsv or peaks")
        return self


class LabelsConfig(StrictConfig):
    center_bp: int = 200
    """Width of the window's central region that decides its labels (see README.md, "Preprocessing")."""
    bin_labels: bool = False
    """Also write per-bin labels (bin_labels dataset), each bin deciding from its own range."""
    tfs: list[TFLabelConfig]
    """One entry per label (TF)."""


class OutputConfig(StrictConfig):
    output_dir: str = "data"
    """Folder receiving one sub-folder per split."""
    windows_per_shard: int = 2048
    """Candidate windows (before filtering) per shard; fixes the shard layout independent of workers."""
    chunk_windows: int = 64
    """HDF5 chunk length along the window axis (small: fast random reads of single samples)."""
    compression: Literal["gzip", "lzf", "none"] = "gzip"
    """HDF5 filter (gzip is level 1)."""

    @model_validator(mode="after")
    def _check(self) -> "OutputConfig":
        if self.windows_per_shard < 1 or self.chunk_windows < 1:
            raise ValueError("windows_per_shard and chunk_windows must be >= 1")
        return self


class PreprocessingConfig(StrictConfig):
    genome: GenomeConfig
    split: SplitConfig
    windows: WindowConfig = WindowConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    cell_types: list[CellTypeConfig] = []
    """The cell types (the C axis, in this order)."""
    chromatin_states: StatesConfig = StatesConfig()
    signal: SignalConfig = SignalConfig()
    labels: Optional[LabelsConfig] = None
    """Fine-tuning labels (create_finetuning_data.py only)."""
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _check(self) -> "PreprocessingConfig":
        k = self.tokenizer.k
        if not 1 <= k <= MAX_K:
            raise ValueError(f"tokenizer.k must be in 1..{MAX_K}, got {k}")
        if self.windows.bin_size % k:
            raise ValueError(f"windows.bin_size ({self.windows.bin_size}) must be a multiple of tokenizer.k ({k})")
        names = [c.name for c in self.cell_types]
        if len(set(names)) != len(names):
            raise ValueError(f"cell_types: duplicate names in {names}")
        return self


_PATH_KEYS = (("genome", "fasta"), ("windows", "blacklist"))


def _resolve(path: Any, base: Path) -> Any:
    """An input path made absolute against ``base`` (other values are left to validation).

    Raises:
        ParamsError: a NUL byte in the path, or ``~user`` naming no user.
    """
    if not isinstance(path, str):
        return path
    if "\0" in path:
        raise ParamsError(f"{path!r}: a path cannot hold a NUL byte")
    try:
        p = Path(path).expanduser()
    except RuntimeError:
        raise ParamsError(f"{path}: cannot expand {path.split('/')[0]} (no such user)") from None
    return str(p if p.is_absolute() else (base / p).resolve())


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Copy of the raw YAML mapping with every input path made absolute against ``base``."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for section, key in _PATH_KEYS:
        if isinstance(data.get(section), dict) and isinstance(data[section].get(key), str):
            data[section][key] = _resolve(data[section][key], base)
    cells = data.get("cell_types")
    if isinstance(cells, list):
        data["cell_types"] = [
            {**c,
             **({"segmentation": _resolve(c["segmentation"], base)} if isinstance(c.get("segmentation"), str) else {}),
             **({"tracks": {a: _resolve(p, base) for a, p in c["tracks"].items()}} if isinstance(c.get("tracks"), dict) else {})}
            if isinstance(c, dict) else c
            for c in cells
        ]
    labels = data.get("labels")
    if isinstance(labels, dict) and isinstance(labels.get("tfs"), list):
        labels = dict(labels)
        labels["tfs"] = [
            {**t,
             **({"dream_tsv": _resolve(t["dream_tsv"], base)} if isinstance(t.get("dream_tsv"), str) else {}),
             **({"peaks": {c: _resolve(p, base) for c, p in t["peaks"].items()}} if isinstance(t.get("peaks"), dict) else {})}
            if isinstance(t, dict) else t
            for t in labels["tfs"]
        ]
        data["labels"] = labels
    if isinstance(data.get("output"), dict) and isinstance(data["output"].get("output_dir"), str):
        data["output"]["output_dir"] = _resolve(data["output"]["output_dir"], base)
    return data


def load_config(path: str | Path, kind: Literal["pretraining", "finetuning"]) -> PreprocessingConfig:
    """Read and validate a preprocessing YAML for ``kind``.

    Raises:
        ParamsError: one line naming the file and the key that is wrong.
    """
    path = Path(path)
    try:
        raw = resolve_paths(read_yaml(path), path.resolve().parent)
    except ParamsError as err:
        raise ParamsError(f"{path}: {err}") from None
    config = parse_section(PreprocessingConfig, raw, "", source=path)
    if kind == "pretraining" and config.labels is not None:
        raise ParamsError(f"{path}: labels: only create_finetuning_data.py takes labels")
    if kind == "finetuning" and config.labels is None:
        raise ParamsError(f"{path}: labels: required key is missing (fine-tuning needs labels)")
    if not config.cell_types:
        raise ParamsError(f"{path}: cell_types: at least one cell type is needed (a sample is a window x cell type)")
    return config
