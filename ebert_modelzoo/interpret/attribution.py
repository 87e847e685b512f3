"""Per-base attributions of one label's logit for windows in one cell type.

Three methods, each giving ``contributions`` [n, S, 4] (non-zero only at the window's own base,
what the logos and bigWigs show) and ``hypothetical`` [n, S, 4] (every base, what TF-MoDISco
clusters):

- ``ism``: in-silico saturation mutagenesis, every position to each other base, batched. The
  hypothetical score of base b at a position is the logit change of mutating to b, centred over
  the four bases; the contribution of the window's base is its centred value.
- ``gradient``: gradient x input. captum's ``Saliency`` (signed) gives d logit / d one-hot base,
  centred over the four bases (the gradient along the simplex of one-hot inputs), times the input.
- ``integrated_gradients``: captum's ``IntegratedGradients`` from the uniform base composition
  (0.25 each) to the window's one-hot; a position's total is placed on its base (completeness:
  the totals add up to logit(window) - logit(uniform)).

The gradient methods need the logit as a function of one-hot bases. The model embeds k-mer tokens,
so a forward hook on its word-embedding table replaces the DNA tokens' rows by the soft k-mer
embedding of a one-hot input X [n, S, 4]: the outer product of a token's k base vectors weights
the 4^k k-mer rows (exactly the token's row for a one-hot input; a multilinear interpolation in
between), plus the [N] row weighted by what is left (1 for a base coded N).

Inputs the processor derives from the DNA (the known-motif tracks of a run with ``motif_file``)
are recomputed from every mutant by ISM, which therefore measures the whole model. The two
gradient methods differentiate through the DNA token embeddings only: a motif scan is a discrete
function of the bases, so the tracks are held at the stored DNA's values and what the model reads
from them is missing from the gradient (``Attributions.through`` says which holds; for such a run
the gradient shows what it learned from the DNA tokens beyond its tracks).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ebert_modelzoo.data.motifs import N_CODE
from ebert_modelzoo.errors import InterpretError
from ebert_modelzoo.interpret.scoring import Scorer, samples_for

LOGGER = logging.getLogger("ebert_modelzoo")
METHODS = ("ism", "gradient", "integrated_gradients")
IG_STEPS = 32


def one_hot(codes: np.ndarray) -> np.ndarray:
    """[..., S, 4] float32 one-hot of base codes [..., S]; N is all zeros."""
    out = np.zeros(codes.shape + (4,), dtype=np.float32)
    valid = codes < N_CODE
    out[valid, codes[valid]] = 1.0
    return out


@dataclass(frozen=True)
class Attributions:
    """Attributions of label ``label`` in cell type ``cell`` (epigenome of ``epigenome_cell``)."""

    method: str
    label: str
    cell: str
    epigenome_cell: str
    windows: np.ndarray
    """[n] window indices in the split."""
    codes: np.ndarray
    """[n, S] base codes."""
    hypothetical: np.ndarray
    """[n, S, 4] float32."""
    contributions: np.ndarray
    """[n, S, 4] float32, non-zero only at each position's own base."""
    through: str = ""
    """The inputs the attributions pass through (see ``inputs_through``)."""

    @property
    def per_base(self) -> np.ndarray:
        """[n, S] contribution of each position's base."""
        return self.contributions.sum(axis=-1)


def inputs_through(scorer: Scorer, method: str) -> str:
    """What ``method``'s attributions of ``scorer``'s model pass through, in words."""
    derived = scorer.dna_derived_inputs
    if method == "ism":
        read = (("tokens",) if scorer.builder.dna else ()) + derived
        return f"every input, recomputed from the mutated DNA ({', '.join(read)})" if read else "no input: no DNA read"
    if derived:
        return f"the DNA token embeddings only ({', '.join(derived)} held at the stored DNA's values)"
    return "the DNA token embeddings (the model's only DNA input)"


def mutants(codes: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every single-base mutant of ``codes`` [S] at ``positions``: ([m, S] codes, [m] position,
    [m] new base), m = 3 per position whose base is A/C/G/T (positions holding N are skipped)."""
    positions = positions[codes[positions] < N_CODE]
    pos = np.repeat(positions, 3)
    alt = (codes[pos] + np.tile(np.arange(1, 4), positions.size)) % 4
    out = np.repeat(codes[None, :], pos.size, axis=0)
    out[np.arange(pos.size), pos] = alt
    return out, pos, alt.astype(np.int64)


def ism(scorer: Scorer, windows: Sequence[int], cell: int, label: int, epigenome_cell: Optional[int] = None,
        positions: Optional[np.ndarray] = None, progress: bool = True) -> np.ndarray:
    """[n, S, 4] logit change of each single-base substitution (0 at the window's own base; NaN
    at positions not mutated: outside ``positions`` or coded N), mutants batched across windows."""
    windows = np.asarray(windows, dtype=np.int64)
    codes = scorer.codes(windows)
    n, length = codes.shape
    where = np.arange(length) if positions is None else np.asarray(positions, dtype=np.int64)
    reference = scorer.logits(samples_for(windows, cell, epigenome_cell))[:, label]
    delta = np.full((n, length, 4), np.nan, dtype=np.float32)
    items = range(n)
    if progress:
        items = tqdm(items, desc="ISM", unit="window", leave=False)
    for i in items:
        mutated, pos, alt = mutants(codes[i], where)
        scores = scorer.logits(samples_for(np.full(pos.size, windows[i]), cell, epigenome_cell, mutated))[:, label]
        delta[i, pos, alt] = scores - reference[i]
        valid = where[codes[i, where] < N_CODE]
        delta[i, valid, codes[i, valid]] = 0.0
    return delta


@contextmanager
def one_hot_dna(scorer: Scorer) -> Iterator[dict[str, torch.Tensor]]:
    """While open, the model's DNA token embeddings come from the one-hot tensor put in the
    yielded dict under "x" ([n, S, 4], on the scorer's device) before each forward pass."""
    embeddings = getattr(getattr(getattr(scorer.model, "ebert", None), "embeddings", None), "word_embeddings", None)
    if not isinstance(embeddings, torch.nn.Embedding):
        raise InterpretError("gradient attributions need the model's ebert.embeddings.word_embeddings table")
    tokenizer, n_tok = scorer.tokenizer, scorer.data.tokens_per_window
    k, first = tokenizer.k, tokenizer.first_kmer_id
    state: dict[str, torch.Tensor] = {}

    def soft_tokens(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        x = state["x"]  # [n, S, 4]
        per_token = x.reshape(x.shape[0], n_tok, k, 4)
        weights = per_token[:, :, 0]
        for j in range(1, k):  # outer product, first base most significant as in the vocabulary
            weights = (weights.unsqueeze(-1) * per_token[:, :, j].unsqueeze(-2)).flatten(-2)
        table = module.weight
        dna = weights @ table[first:first + 4 ** k] + (1 - weights.sum(-1, keepdim=True)) * table[tokenizer.n_id]
        return torch.cat([output[:, :1], dna.to(output.dtype), output[:, 1 + n_tok:]], dim=1)

    handle = embeddings.register_forward_hook(soft_tokens)
    try:
        yield state
    finally:
        handle.remove()


def _gradient_attributions(scorer: Scorer, windows: np.ndarray, cell: int, label: int,
                           epigenome_cell: Optional[int], method: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from captum.attr import IntegratedGradients, Saliency  # the optional `interpret` extra

    samples = samples_for(windows, cell, epigenome_cell)
    hypothetical, contributions = [], []
    with one_hot_dna(scorer) as state:
        for piece in scorer.chunks(samples, "gradients" if progress else None):
            batch = scorer.batch(piece)
            keys = sorted(batch)

            def forward(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
                state["x"] = x
                return scorer.forward(dict(zip(keys, values)))[:, label]

            x = torch.from_numpy(one_hot(scorer.codes(piece.windows))).to(scorer.device).requires_grad_()
            values = tuple(batch[key] for key in keys)
            if method == "gradient":
                grad = Saliency(forward).attribute(x, additional_forward_args=values, abs=False)
                hyp = grad - grad.mean(dim=-1, keepdim=True)
                contrib = hyp * x
            else:
                ig = IntegratedGradients(forward).attribute(
                    x, baselines=torch.full_like(x, 0.25), additional_forward_args=values, n_steps=IG_STEPS,
                    internal_batch_size=scorer.batch_size)
                contrib = ig.sum(dim=-1, keepdim=True) * x
                hyp = ig
            hypothetical.append(hyp.detach().float().cpu().numpy())
            contributions.append(contrib.detach().float().cpu().numpy())
    return np.concatenate(hypothetical), np.concatenate(contributions)


def attribute(scorer: Scorer, windows: Sequence[int], cell: str, label: str, method: str,
              epigenome_cell: Optional[str] = None, positions: Optional[np.ndarray] = None,
              progress: bool = True) -> Attributions:
    """Attributions of ``label``'s logit over ``windows`` in cell type ``cell``.

    Args:
        epigenome_cell: read this cell type's epigenome instead ("what if").
        positions: ISM only: the window positions to mutate (default all; others are 0).

    Raises:
        InterpretError: unknown method, cell type or label.
    """
    if method not in METHODS:
        raise InterpretError(f"attribution method {method!r}: expected one of {', '.join(METHODS)}")
    windows = np.asarray(windows, dtype=np.int64)
    c, k = scorer.cell_index(cell), scorer.label_index(label)
    e = scorer.cell_index(epigenome_cell) if epigenome_cell else c
    codes = scorer.codes(windows)
    if method == "ism":
        delta = ism(scorer, windows, c, k, e, positions, progress)
        delta = np.nan_to_num(delta, nan=0.0)
        hypothetical = delta - delta.mean(axis=-1, keepdims=True)
        contributions = hypothetical * one_hot(codes)
    else:
        if not scorer.builder.dna:
            raise InterpretError(f"{method} attributions pass through the DNA token embeddings, which this run does "
                                 "not read (use_dna: false); use ism")
        if scorer.dna_derived_inputs:
            LOGGER.warning("%s attributions pass through %s", method, inputs_through(scorer, method))
        hypothetical, contributions = _gradient_attributions(scorer, windows, c, k, e, method, progress)
    return Attributions(method, label, cell, epigenome_cell or cell, windows, codes,
                        hypothetical.astype(np.float32), contributions.astype(np.float32),
                        inputs_through(scorer, method))
