"""Position weight matrices: a small JSON motif file, log-odds conversion, two-strand scanning.

Motif file (the shape ``data_processing/demo_data/motifs.json`` ships; extra keys are ignored)::

    {
      "background": [0.3, 0.2, 0.2, 0.3],      optional, A C G T, sums to 1; default uniform
      "pseudocount": 0.8,                       optional, >= 0; default 0.8
      "motifs": [
        {"tf": "CTCF",                          the label (TF) name the motif scores
         "matrix_id": "MA0139.1",               e.g. the JASPAR id and version
         "name": "CTCF",                        optional, the matrix' own name
         "counts": {"A": [...], "C": [...], "G": [...], "T": [...]}}   one value per position:
      ]                                                                 counts or probabilities
    }

Score of a motif of width L at a sequence position: the sum over its columns of
``log2(p[b, j] / background[b])`` with ``p = (counts + pseudocount * background) / (column total
+ pseudocount)``, the best of the forward strand and the reverse complement. A site that covers an
N (or any non-ACGT base) scores -inf: it never matches.

Sequences are base codes (uint8, A0 C1 G2 T3, N 4) of shape [..., S]; ``encode_dna`` makes them
from strings and ``codes_from_tokens`` from the token ids of ``ebert_modelzoo.tokenizer``.
Scans return [..., S - L + 1] per-position scores, or [...] window maxima.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from ebert_modelzoo.errors import MotifError
from ebert_modelzoo.tokenizer import DNATokenizer

BASES = "ACGT"
N_CODE = 4
DEFAULT_PSEUDOCOUNT = 0.8


@dataclass(frozen=True)
class Motif:
    """One position frequency matrix."""

    tf: str
    matrix_id: str
    counts: np.ndarray
    """[4, L] float64, rows A C G T."""

    @property
    def width(self) -> int:
        return int(self.counts.shape[1])


@dataclass(frozen=True)
class MotifSet:
    """The motifs of a file with the background and pseudocount their log-odds use."""

    motifs: tuple[Motif, ...]
    background: np.ndarray
    """[4] probabilities of A C G T."""
    pseudocount: float
    path: Path

    @property
    def tfs(self) -> tuple[str, ...]:
        return tuple(m.tf for m in self.motifs)

    def get(self, tf: str) -> Motif:
        """The motif scoring label ``tf``.

        Raises:
            MotifError: the file has no motif for ``tf``.
        """
        for motif in self.motifs:
            if motif.tf == tf:
                return motif
        raise MotifError(f"{self.path}: no motif for TF {tf!r} (motifs for: {', '.join(self.tfs)})")

    def log_odds(self, tf: str) -> np.ndarray:
        """[4, L] log2-odds matrix of the motif for ``tf``."""
        return log_odds(self.get(tf).counts, self.background, self.pseudocount)


def _motif(entry: object, index: int, path: Path) -> Motif:
    where = f"{path}: motifs[{index}]"
    if not isinstance(entry, dict):
        raise MotifError(f"{where}: expected an object")
    for key in ("tf", "matrix_id", "counts"):
        if key not in entry:
            raise MotifError(f"{where}: key {key!r} is missing")
    counts = entry["counts"]
    if not isinstance(counts, dict) or set(counts) != set(BASES):
        raise MotifError(f"{where}: 'counts' must be an object with exactly the keys A, C, G, T")
    try:
        matrix = np.array([counts[b] for b in BASES], dtype=np.float64)
    except (TypeError, ValueError):
        raise MotifError(f"{where}: 'counts' rows must be equal-length lists of numbers") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise MotifError(f"{where}: 'counts' rows must be equal-length, non-empty lists of numbers")
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise MotifError(f"{where}: counts must be finite and >= 0")
    if np.any(matrix.sum(axis=0) <= 0):
        raise MotifError(f"{where}: a column of 'counts' sums to 0")
    return Motif(tf=str(entry["tf"]), matrix_id=str(entry["matrix_id"]), counts=matrix)


def load_motifs(path: str | Path) -> MotifSet:
    """Read a motif file (format in the module docstring).

    Raises:
        FileNotFoundError: the file is missing.
        MotifError: invalid JSON, a missing key, a bad matrix or background, a TF listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: motif file not found")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MotifError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("motifs"), list) or not raw["motifs"]:
        raise MotifError(f"{path}: expected an object with a non-empty list 'motifs'")
    background = np.asarray(raw.get("background", [0.25] * 4), dtype=np.float64)
    if background.shape != (4,) or np.any(background <= 0) or abs(background.sum() - 1.0) > 1e-6:
        raise MotifError(f"{path}: 'background' must be 4 positive probabilities (A C G T) summing to 1")
    pseudocount = float(raw.get("pseudocount", DEFAULT_PSEUDOCOUNT))
    if not pseudocount >= 0:
        raise MotifError(f"{path}: 'pseudocount' must be >= 0, got {pseudocount}")
    motifs = tuple(_motif(entry, i, path) for i, entry in enumerate(raw["motifs"]))
    tfs = [m.tf for m in motifs]
    duplicates = sorted({tf for tf in tfs if tfs.count(tf) > 1})
    if duplicates:
        raise MotifError(f"{path}: more than one motif for TF {', '.join(duplicates)}")
    return MotifSet(motifs=motifs, background=background, pseudocount=pseudocount, path=path)


def log_odds(counts: np.ndarray, background: np.ndarray, pseudocount: float) -> np.ndarray:
    """[4, L] log2 odds of the pseudocounted column frequencies of ``counts`` [4, L] over ``background`` [4].

    A zero count with pseudocount 0 gives -inf (that base can never be part of a match).
    """
    counts = np.asarray(counts, dtype=np.float64)
    bg = np.asarray(background, dtype=np.float64)[:, None]
    probs = (counts + pseudocount * bg) / (counts.sum(axis=0, keepdims=True) + pseudocount)
    with np.errstate(divide="ignore"):
        return np.log2(probs / bg)


def reverse_complement_pwm(pwm: np.ndarray) -> np.ndarray:
    """The matrix that scores the reverse complement: rows A C G T -> T G C A, columns reversed."""
    return pwm[::-1, ::-1]


_ENCODE = np.full(256, N_CODE, dtype=np.uint8)
for _code, _base in enumerate(BASES):
    _ENCODE[ord(_base)] = _ENCODE[ord(_base.lower())] = _code


def encode_dna(sequence: str) -> np.ndarray:
    """[S] base codes of a DNA string (A0 C1 G2 T3, either case; anything else is N, 4)."""
    return _ENCODE[np.frombuffer(sequence.encode("ascii", errors="replace"), dtype=np.uint8)]


def token_code_table(tokenizer: DNATokenizer) -> np.ndarray:
    """[V, k] uint8 base codes of every token id of ``tokenizer``: a k-mer's k bases, [N] k N
    codes, 255 for ids that are not DNA ([PAD], [CLS], ...)."""
    indices = tokenizer.base_indices()  # A0 C1 G2 T3, -1 for every id that is not a k-mer
    table = np.where(indices < 0, 255, indices).astype(np.uint8)
    table[tokenizer.n_id] = N_CODE
    return table


def codes_from_tokens(tokens: np.ndarray, tokenizer: DNATokenizer) -> np.ndarray:
    """[..., n_tok * k] base codes of token ids [..., n_tok] of ``tokenizer``'s k-mer vocabulary.

    A k-mer token gives its k bases, [N] gives k N codes (a k-mer holding an N base is stored as [N]).

    Raises:
        ValueError: ``tokens`` holds an id that is neither a k-mer nor [N] (e.g. [PAD], [CLS]).
    """
    vocab = tokenizer.tokens
    k = tokenizer.k
    table = token_code_table(tokenizer)
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= len(vocab)):
        raise ValueError(f"token ids must be in [0, {len(vocab)}), got {tokens.min()}..{tokens.max()}")
    codes = table[tokens]  # [..., n_tok, k]
    if np.any(codes == 255):
        bad = sorted({vocab[int(i)] for i in np.unique(tokens[np.any(codes == 255, axis=-1)])})
        raise ValueError(f"tokens hold non-DNA ids ({', '.join(bad)}); pass stored window tokens only")
    return codes.reshape(*tokens.shape[:-1], tokens.shape[-1] * k)


def _one_strand(codes: np.ndarray, pwm: np.ndarray, dtype: type) -> np.ndarray:
    """[..., S - L + 1] scores of ``pwm`` [4, L] at each start; an N anywhere in a site gives -inf."""
    width = pwm.shape[1]
    positions = codes.shape[-1] - width + 1
    table = np.vstack([pwm, np.full((1, width), -np.inf)]).astype(dtype)  # row 4: N
    scores = np.zeros(codes.shape[:-1] + (positions,), dtype=dtype)
    for j in range(width):  # over motif columns; every sequence position at once
        scores += table[codes[..., j : j + positions], j]
    return scores


def scan(codes: np.ndarray, pwm: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """[..., S - L + 1] best-of-both-strands score of ``pwm`` [4, L] at each start of ``codes`` [..., S].

    float32 suits window batches; float64 is for comparing scores with p-value thresholds over a
    genome, where float32 rounding (~1e-5 bits) can flip a score at a threshold or reorder equal
    scores of repeats.

    Raises:
        ValueError: ``pwm`` is not [4, L], or the sequences are shorter than the motif.
    """
    pwm = np.asarray(pwm, dtype=np.float64)
    codes = np.asarray(codes)
    if pwm.ndim != 2 or pwm.shape[0] != 4:
        raise ValueError(f"pwm must be [4, L], got shape {pwm.shape}")
    if codes.shape[-1] < pwm.shape[1]:
        raise ValueError(f"sequences of length {codes.shape[-1]} are shorter than the motif ({pwm.shape[1]})")
    if codes.size and codes.max() > N_CODE:
        raise ValueError(f"base codes must be 0..{N_CODE}, got {codes.max()}")
    return np.maximum(_one_strand(codes, pwm, dtype), _one_strand(codes, reverse_complement_pwm(pwm), dtype))


def max_score(codes: np.ndarray, pwm: np.ndarray) -> np.ndarray:
    """[...] best score of ``pwm`` anywhere in each sequence of ``codes`` [..., S], either strand.

    -inf where no site is free of N.
    """
    return scan(codes, pwm).max(axis=-1)


def min_score(pwm: np.ndarray) -> float:
    """The lowest score an all-ACGT site can have (a floor for windows with no N-free site)."""
    return float(np.asarray(pwm).min(axis=0).sum())


def best_score(pwm: np.ndarray) -> float:
    """The highest score a site can have (the consensus'): the sum of the column maxima."""
    return float(np.asarray(pwm).max(axis=0).sum())


@dataclass(frozen=True)
class MotifTracks:
    """Known motifs as per-bin input tracks (the ENCODE-DREAM winners' motif features), computed
    from a window's stored tokens: for each motif and bin, the best two-strand score of the sites
    centred in that bin, as a fraction of the motif's best possible score, clipped to [0, 1]
    (0 = no site scoring above 0 bits, 1 = the consensus). Picklable, so DataLoader workers run it."""

    pwms: tuple[np.ndarray, ...]
    """[4, L] log-odds matrices, one per track."""
    names: tuple[str, ...]
    """The TF each track scores, in track order."""
    code_table: np.ndarray
    """[V, k] base codes of every token id (255 = not DNA); see ``codes_from_tokens``."""
    bin_bp: int
    window_bp: int
    """Sites centred within window_bp around a bin's centre count for it (bin_bp = the bin itself)."""

    @classmethod
    def build(cls, motifs: MotifSet, names: tuple[str, ...], tokenizer: DNATokenizer, tokens_per_bin: int,
              window_bp: int | None = None) -> "MotifTracks":
        """Tracks of the motifs for TFs ``names`` (each must be in ``motifs``) over ``tokenizer``'s
        tokens; ``window_bp`` as the field (None = the bin).

        Raises:
            MotifError: a name has no motif.
        """
        pwms = tuple(motifs.log_odds(name) for name in names)
        bin_bp = tokens_per_bin * tokenizer.k
        return cls(pwms=pwms, names=tuple(names), code_table=token_code_table(tokenizer),
                   bin_bp=bin_bp, window_bp=bin_bp if window_bp is None else window_bp)

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        """[n, N, M] float32 tracks of windows' token ids [n, n_tok] (no specials)."""
        codes = self.code_table[tokens].reshape(tokens.shape[0], -1)  # [n, S]
        if np.any(codes == 255):
            raise ValueError("motif tracks: tokens hold non-DNA ids; pass stored window tokens only")
        length = codes.shape[1]
        num_bins = length // self.bin_bp
        tracks = np.zeros((tokens.shape[0], num_bins, len(self.pwms)), dtype=np.float32)
        for m, pwm in enumerate(self.pwms):
            width = pwm.shape[1]
            if width > length:
                continue  # no site fits: the track stays 0
            # site starting at s is centred at s + width // 2; put it in that base's bin
            centred = np.full((tokens.shape[0], length), -np.inf, dtype=np.float32)
            centred[:, width // 2 : width // 2 + length - width + 1] = scan(codes, pwm)
            for b in range(num_bins):
                middle = b * self.bin_bp + self.bin_bp // 2
                first = max(0, middle - self.window_bp // 2)
                best = centred[:, first : max(first + 1, middle - self.window_bp // 2 + self.window_bp)].max(axis=-1)
                tracks[:, b, m] = np.clip(best / best_score(pwm), 0.0, 1.0)
        return tracks
