"""The pure helpers of ebert_modelzoo.interpret against their reference definitions."""
from __future__ import annotations

import numpy as np
import pytest

from ebert_modelzoo.data.motifs import encode_dna
from ebert_modelzoo.errors import InterpretError
from ebert_modelzoo.interpret.attribution import mutants, one_hot
from ebert_modelzoo.interpret.scoring import parse_region, tokens_from_codes
from ebert_modelzoo.tokenizer import DNATokenizer


@pytest.mark.parametrize("k", [1, 3, 4])
def test_tokens_from_codes_is_the_tokenizer(k: int) -> None:
    rng = np.random.default_rng(k)
    text = "".join(rng.choice(list("ACGTN"), size=12 * k, p=[0.24, 0.24, 0.24, 0.24, 0.04]))
    tokenizer = DNATokenizer(k)
    assert tokens_from_codes(encode_dna(text)[None], tokenizer)[0].tolist() == tokenizer.encode(text).tolist()


def test_mutants_are_every_other_base_at_each_position_skipping_n() -> None:
    codes = encode_dna("ACGNT")
    mutated, pos, alt = mutants(codes, np.arange(5))
    assert pos.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 4, 4, 4]
    for row, p, a in zip(mutated, pos, alt):
        assert row[p] == a != codes[p] and np.array_equal(np.delete(row, p), np.delete(codes, p))
    assert {(p, a) for p, a in zip(pos.tolist(), alt.tolist())} == {(p, b) for p in (0, 1, 2, 4) for b in range(4)
                                                                   if b != codes[p]}


def test_one_hot_and_regions() -> None:
    assert one_hot(encode_dna("ACN")).tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert parse_region("chrX:49,100,000-49,100,060") == ("chrX", 49100000, 49100060)
    for bad in ("chrX", "chrX:10-5", "chrX:a-b"):
        with pytest.raises(InterpretError, match="region"):
            parse_region(bad)


def test_cpu_batches_are_sized_to_the_model_and_threads() -> None:
    from pathlib import Path

    from ebert_modelzoo.config.params import load_params
    from ebert_modelzoo.interpret.scoring import DEFAULT_BATCH_SIZE, cpu_batch_size

    tiny = load_params(Path(__file__).resolve().parents[2] / "params" / "ebert_finetune_tiny.yaml").trainer.init.model
    base_like = tiny.model_copy(update={"hidden_size": 768, "filter_size": 3072})
    assert [cpu_batch_size(tiny, 256, t) for t in (1, 2, 8)] == [64, 128, DEFAULT_BATCH_SIZE]
    assert cpu_batch_size(base_like, 256, 1) == 5 and cpu_batch_size(base_like, 4096, 1) == 1
