"""The preprocessing config (one YAML file per dataset build). Relative paths in the file are
resolved against the folder holding the YAML file, so a config and its inputs can move together."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import Field, model_validator

from ebert_modelzoo.config.base import StrictConfig, parse_section, read_yaml
from ebert_modelzoo.errors import ParamsError
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
    window_length: int = Field(1000, ge=1)
    """Window (sample) length in bp; a multiple of bin_size."""
    stride: int = Field(1000, ge=1)
    """Distance in bp between consecutive window starts (< window_length: overlapping windows)."""
    bin_size: int = Field(200, ge=1)
    """Epigenome bin size in bp (200 for ChromHMM/Roadmap); a multiple of tokenizer.k."""
    max_n_fraction: float = Field(0.1, ge=0, le=1)
    """Windows whose fraction of non-ACGT bases exceeds this are dropped."""
    blacklist: Optional[str] = None
    """BED of excluded regions (e.g. the ENCODE blacklist); windows overlapping one are dropped."""

    @model_validator(mode="after")
    def _check(self) -> "WindowConfig":
        if self.window_length % self.bin_size:
            raise ValueError(
                f"window_length ({self.window_length}) must be a multiple of bin_size ({self.bin_size})"
            )
        return self


class TokenizerConfig(StrictConfig):
    k: int = Field(1, ge=1, le=MAX_K)
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


class RegionsConfig(StrictConfig):
    """Windows from a BED of regions (e.g. peaks plus sampled background) instead of tiling the
    split. Columns are 1-based numbers, or names from a ``#chrom start end ...`` header line."""

    bed: str
    """BED of regions (chrom start end, more columns optional), plain or gzipped, any order."""
    windows: Literal["center", "tile"] = "center"
    """center: one window centred on each region; tile: windows every windows.stride inside each
    region (a region shorter than a window gets one centred window)."""
    label_columns: dict[str, Union[int, str]] = {}
    """Labels read from the BED: {label name: column}; 1, 0, -1/empty/NA (missing), the same for every
    cell type. Added after labels.tfs (which label the windows as tiled windows are labelled)."""
    split_column: Optional[Union[int, str]] = None
    """Column naming each region's split (train, validation/dev/valid/val, test). Without it the
    split section decides: a window lying inside one of a split's regions belongs to it."""


class OutputConfig(StrictConfig):
    output_dir: str = "data"
    """Folder receiving one sub-folder per split."""
    windows_per_shard: int = Field(2048, ge=1)
    """Candidate windows (before filtering) per shard; fixes the shard layout independent of workers."""
    chunk_windows: int = Field(64, ge=1)
    """HDF5 chunk length along the window axis (small: fast random reads of single samples)."""
    compression: Literal["gzip", "lzf", "none"] = "gzip"
    """HDF5 filter (gzip is level 1)."""


class PreprocessingConfig(StrictConfig):
    genome: GenomeConfig
    split: Optional[SplitConfig] = None
    """Required unless regions.split_column splits the regions."""
    regions: Optional[RegionsConfig] = None
    """Windows from a BED of regions instead of tiling the split (create_finetuning_data.py)."""
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
        if self.windows.bin_size % k:
            raise ValueError(f"windows.bin_size ({self.windows.bin_size}) must be a multiple of tokenizer.k ({k})")
        if self.split is None and (self.regions is None or self.regions.split_column is None):
            raise ValueError("split: required key is missing (or give regions.split_column)")
        if self.regions and self.regions.label_columns and self.labels and self.labels.bin_labels:
            raise ValueError("labels.bin_labels: BED label columns label whole regions, not bins")
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
    if isinstance(data.get("regions"), dict) and isinstance(data["regions"].get("bed"), str):
        data["regions"]["bed"] = _resolve(data["regions"]["bed"], base)
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
    if config.regions is not None and kind == "pretraining":
        raise ParamsError(f"{path}: regions: only create_finetuning_data.py takes regions")
    if kind == "finetuning" and config.labels is None and not (config.regions and config.regions.label_columns):
        raise ParamsError(f"{path}: labels: required key is missing (fine-tuning needs labels)")
    if not config.cell_types:
        raise ParamsError(f"{path}: cell_types: at least one cell type is needed (a sample is a window x cell type)")
    return config


# ---------------------------------------------------------------------------------------------
# labelled sequences (create_sequence_data.py): tables or FASTA instead of a genome


class SequenceFilesConfig(StrictConfig):
    """Where the labelled sequences are: one list of files per split, or ``table`` files with a
    ``split_column``. Files are CSV (``.csv``), TSV (``.tsv``/``.txt``) with a header line, or FASTA
    (``.fa``/``.fasta``/``.fna``) whose headers carry the labels (``>id CTCF=1 NRF1=0``, or
    ``>id 1`` for one label called ``label``); any of them may be gzipped (``.gz``)."""

    train: list[str] = []
    """Files of the training split."""
    validation: list[str] = []
    """Files of the validation split (the DNA-LM benchmarks' "dev")."""
    test: list[str] = []
    """Files of the test split."""
    table: list[str] = []
    """Files holding every split, told apart by ``split_column``."""
    split_column: Optional[str] = None
    """Column of ``table`` naming each row's split: train, validation (or dev/valid/val), test."""
    sequence_column: str = "sequence"
    """Column holding the DNA (A/C/G/T and IUPAC codes, either case)."""
    id_column: Optional[str] = None
    """Column holding a row id carried into the predictions (default: ``id`` or ``name`` if present)."""
    label_columns: Optional[list[str]] = None
    """Label columns, the K axis in this order (default: every other column, in file order).
    Values: 1 (positive), 0 (negative), -1 or empty or NA (missing: weight 0)."""

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: [v] if k in ("train", "validation", "test", "table") and isinstance(v, str) else v
                    for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _check(self) -> "SequenceFilesConfig":
        if self.table and (self.train or self.validation or self.test):
            raise ValueError("give either table (with split_column) or train/validation/test files, not both")
        if self.table and not self.split_column:
            raise ValueError("table needs split_column (the column naming each row's split)")
        if not self.table and not self.train:
            raise ValueError("train: at least one file is needed (or table with split_column)")
        return self


class SequenceDataConfig(StrictConfig):
    """A fine-tuning dataset from labelled sequences: DNA only, one sample per row, written as the
    same shards as genome data (one pseudo cell type, no epigenome)."""

    sequences: SequenceFilesConfig
    window_length: Optional[int] = Field(None, ge=1)
    """Model window in bp (a multiple of bin_size); shorter sequences are centred in it and padded
    with [PAD] (not attended to), longer ones are an error naming the row. Default: the longest
    sequence of all files, rounded up to bin_size."""
    bin_size: int = Field(200, ge=1)
    """Bin size in bp; fixes the model's tokens_per_bin (bin_size / k). 200 matches the shipped params."""
    tokenizer: TokenizerConfig = TokenizerConfig(k=4)
    """k-mer length (default 4, as the shipped tiny and base params)."""
    cell_type: str = "sequence"
    """Name of the one (pseudo) cell type of every sample."""
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _check(self) -> "SequenceDataConfig":
        k = self.tokenizer.k
        if self.bin_size % k:
            raise ValueError(f"bin_size ({self.bin_size}) must be a positive multiple of tokenizer.k ({k})")
        if self.window_length is not None and self.window_length % self.bin_size:
            raise ValueError(f"window_length ({self.window_length}) must be a positive multiple of bin_size ({self.bin_size})")
        return self


def resolve_sequence_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Copy of a raw sequence-data mapping with its file paths made absolute against ``base``."""
    data = dict(data)
    files = data.get("sequences")
    if isinstance(files, dict):
        files = dict(files)
        for key in ("train", "validation", "test", "table"):
            value = files.get(key)
            if isinstance(value, str):
                files[key] = _resolve(value, base)
            elif isinstance(value, list):
                files[key] = [_resolve(v, base) if isinstance(v, str) else v for v in value]
        data["sequences"] = files
    if isinstance(data.get("output"), dict) and isinstance(data["output"].get("output_dir"), str):
        data["output"] = {**data["output"], "output_dir": _resolve(data["output"]["output_dir"], base)}
    return data


def load_sequence_config(path: str | Path) -> SequenceDataConfig:
    """Read and validate a sequence-data YAML (see SequenceDataConfig).

    Raises:
        ParamsError: one line naming the file and the key that is wrong.
    """
    path = Path(path)
    raw = resolve_sequence_paths(read_yaml(path), path.resolve().parent)
    return parse_section(SequenceDataConfig, raw, "", source=path)
