"""DNA k-mer tokenizer: non-overlapping k-mers over A/C/G/T, vectorised over bytes.

Vocabulary (fixed; the data processors rely on it):
    0..4              [PAD] [UNK] [CLS] [SEP] [MASK]
    5                 [N]   any k-mer holding N or another IUPAC ambiguity code
    6 .. 6+4^k-1      the pure ACGT k-mers in lexicographic order (A < C < G < T)

Lower-case (soft-masked) bases read as upper case. Any character that is neither a base nor an
IUPAC code is an error naming it and its position.
"""
from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Optional

import numpy as np

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[N]")
BASES = "ACGT"
IUPAC_AMBIGUOUS = "RYSWKMBDHVN"
MAX_K = 6

_INVALID = 255
_AMBIGUOUS = 4
_PADDING = 6  # encode_centred's filler (never a table value)


def _byte_table() -> np.ndarray:
    """Byte -> 0..3 for ACGT (either case), 4 for IUPAC ambiguity codes, 255 for anything else."""
    table = np.full(256, _INVALID, dtype=np.uint8)
    for code, base in enumerate(BASES):
        table[ord(base)] = table[ord(base.lower())] = code
    for base in IUPAC_AMBIGUOUS:
        table[ord(base)] = table[ord(base.lower())] = _AMBIGUOUS
    return table


_BYTE_TABLE = _byte_table()


def kmer_size(vocab_size: int) -> Optional[int]:
    """The k whose DNATokenizer has ``vocab_size`` ids, or None when no k in 1..MAX_K does."""
    found = [k for k in range(1, MAX_K + 1) if DNATokenizer.first_kmer_id + 4**k == vocab_size]
    return found[0] if found else None


class DNATokenizer:
    """Non-overlapping k-mer tokenizer (k = 1..6) with BERT specials and one [N] token."""

    pad_id = 0
    unk_id = 1
    cls_id = 2
    sep_id = 3
    mask_id = 4
    n_id = 5
    first_kmer_id = 6

    def __init__(self, k: int) -> None:
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"tokenizer k must be an integer in 1..{MAX_K}, got {k!r}")
        self.k = k
        self.vocab_size = self.first_kmer_id + 4**k
        self._place = (4 ** np.arange(k - 1, -1, -1)).astype(np.int64)  # base-4 digit weights

    @property
    def tokens(self) -> list[str]:
        """The vocabulary in id order."""
        return list(SPECIAL_TOKENS) + ["".join(p) for p in product(BASES, repeat=self.k)]

    def base_indices(self) -> np.ndarray:
        """[vocab_size, k] int64: each k-mer id's bases as indices into BASES, -1 for every other
        id (specials, [N])."""
        table = np.full((self.vocab_size, self.k), -1, dtype=np.int64)
        index = np.arange(4**self.k)
        table[self.first_kmer_id :] = (index[:, None] // self._place) % 4
        return table

    def reverse_complement_ids(self) -> np.ndarray:
        """[vocab_size] int64: the id of each k-mer's reverse complement (specials, [N] included,
        map to themselves), so ``table[ids[::-1]]`` is the token sequence of the other strand."""
        digits = self.base_indices()[self.first_kmer_id :]
        table = np.arange(self.vocab_size, dtype=np.int64)
        table[self.first_kmer_id :] = self.first_kmer_id + ((3 - digits[:, ::-1]) * self._place).sum(axis=1)
        return table

    def encode(self, seq: str | bytes) -> np.ndarray:
        """Token ids (uint16) of ``seq``, whose length must be a multiple of k.

        Raises:
            ValueError: the length is not a multiple of k, or a character is not a base/IUPAC code.
        """
        raw = seq.encode("ascii", errors="replace") if isinstance(seq, str) else bytes(seq)
        if len(raw) % self.k:
            raise ValueError(f"sequence length {len(raw)} is not a multiple of k={self.k}")
        codes = _BYTE_TABLE[np.frombuffer(raw, dtype=np.uint8)]
        bad = np.flatnonzero(codes == _INVALID)
        if bad.size:
            pos = int(bad[0])
            char = seq[pos] if isinstance(seq, str) else chr(raw[pos])
            raise ValueError(f"invalid DNA character {char!r} at position {pos}")
        kmers = codes.reshape(-1, self.k)  # (n_tok, k)
        ids = kmers.astype(np.int64) @ self._place + self.first_kmer_id
        ids[(kmers == _AMBIGUOUS).any(axis=1)] = self.n_id
        return ids.astype(np.uint16)

    def encode_centred(self, sequences: list[bytes], length: int) -> np.ndarray:
        """Token ids (uint16 [n, length / k]) of sequences of at most ``length`` bases, each centred
        in the window: padding goes on both sides in whole k-mers (the left side gets the smaller
        share) and reads [PAD]; a k-mer holding both bases and padding (the sequence's last partial
        k-mer) reads [N]. One vectorised pass over all sequences.

        Raises:
            ValueError: ``"row R: ..."`` for the first sequence that is empty, longer than
                ``length`` or holds a character that is neither a base nor an IUPAC code.
        """
        if length % self.k:
            raise ValueError(f"window length {length} is not a multiple of k={self.k}")
        n = len(sequences)
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
        if n and lengths.min() == 0:
            raise ValueError(f"row {int(np.argmin(lengths))}: empty sequence")
        if n and lengths.max() > length:
            row = int(np.argmax(lengths > length))
            raise ValueError(f"row {row}: sequence of {int(lengths[row])} bp is longer than the window ({length} bp)")
        codes = _BYTE_TABLE[np.frombuffer(b"".join(sequences), dtype=np.uint8)]
        ends = np.cumsum(lengths)
        bad = np.flatnonzero(codes == _INVALID)
        if bad.size:
            pos = int(bad[0])
            row = int(np.searchsorted(ends, pos, side="right"))
            char = chr(b"".join(sequences)[pos])
            raise ValueError(f"row {row}: invalid DNA character {char!r} at position {pos - int(ends[row] - lengths[row])}")
        left = (length - lengths) // 2 // self.k * self.k
        grid = np.full((n, length), _PADDING, dtype=np.uint8)
        if n and lengths.min() == lengths.max():  # one length (the usual table): a block copy
            grid[:, int(left[0]):int(left[0] + lengths[0])] = codes.reshape(n, -1)
        else:
            rows = np.repeat(np.arange(n), lengths)
            cols = np.arange(codes.size) - np.repeat(ends - lengths, lengths) + np.repeat(left, lengths)
            grid[rows, cols] = codes
        # k strided passes over (n, tokens) arrays: reductions over a short last axis are slow
        ids = np.zeros((n, length // self.k), dtype=np.int32)
        padded = np.zeros(ids.shape, dtype=np.uint8)
        ambiguous = np.zeros(ids.shape, dtype=bool)
        for j in range(self.k):
            column = grid[:, j::self.k]
            ids = ids * 4 + (column & 3)
            padded += column == _PADDING
            ambiguous |= column == _AMBIGUOUS
        ids += self.first_kmer_id
        ids[ambiguous | ((padded > 0) & (padded < self.k))] = self.n_id
        ids[padded == self.k] = self.pad_id
        return ids.astype(np.uint16)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        """The sequence of ``ids``; [N] becomes k Ns, other specials their bracketed names."""
        vocab = self.tokens
        out = []
        for i in np.asarray(ids, dtype=np.int64).ravel():
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} outside the vocabulary (size {self.vocab_size})")
            out.append("N" * self.k if i == self.n_id else vocab[i])
        return "".join(out)

    def save_vocab(self, path: str | Path) -> None:
        """Write the vocabulary, one token per line (line number - 1 = id)."""
        Path(path).write_text("\n".join(self.tokens) + "\n")

    @classmethod
    def from_vocab_file(cls, path: str | Path) -> "DNATokenizer":
        """Rebuild the tokenizer a vocab file was written by, checking the file token by token.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: naming the file and line where it differs from a valid vocabulary.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: vocabulary file not found")
        lines = path.read_text().splitlines()
        n_kmers = len(lines) - len(SPECIAL_TOKENS)
        k = next((k for k in range(1, MAX_K + 1) if 4**k == n_kmers), None)
        if k is None:
            raise ValueError(
                f"{path}: {len(lines)} lines is not a k-mer vocabulary size (6 + 4^k for k in 1..{MAX_K})"
            )
        tokenizer = cls(k)
        for line_no, (got, want) in enumerate(zip(lines, tokenizer.tokens), start=1):
            if got != want:
                raise ValueError(f"{path}:{line_no}: expected token {want!r}, found {got!r}")
        return tokenizer
