"""The nucleotide-resolution convolutional stem (dna_conv_filters): its base table, its output
against a hand-written convolution, its zero start, and the config checks."""
from __future__ import annotations

import re

import pytest
import torch
from pydantic import ValidationError

from ebert_modelzoo.config.model import EBertFinetuneConfig
from ebert_modelzoo.models.dna_stem import BaseConvStem, one_hot_bases
from ebert_modelzoo.models.ebert import EBertForFineTuningModel
from ebert_modelzoo.tokenizer import BASES, DNATokenizer

from .test_model import B, K, SEQ, make_batch, tiny

KMER_VOCAB = DNATokenizer(2).vocab_size  # 22: make_batch's ids (5..10) are [N] and 2-mers


def stem_config(**keys) -> EBertFinetuneConfig:
    return EBertFinetuneConfig(name="ebert_finetune", num_labels=K,
                               **tiny(**{"vocab_size": KMER_VOCAB, "dna_conv_filters": 6, "dna_conv_width": 5, **keys}))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_base_table_spells_every_kmer_and_leaves_the_rest_zero(k):
    tokenizer = DNATokenizer(k)
    table = one_hot_bases(tokenizer).view(tokenizer.vocab_size, k, 4)
    for token_id, token in enumerate(tokenizer.tokens):
        if token_id < tokenizer.first_kmer_id:  # specials and [N]
            assert table[token_id].sum() == 0
        else:
            assert "".join(BASES[i] for i in table[token_id].argmax(-1)) == token
            assert torch.all(table[token_id].sum(-1) == 1)


def test_stem_is_a_base_resolution_convolution_with_a_max_per_token():
    torch.manual_seed(0)
    stem = BaseConvStem(stem_config())
    torch.nn.init.normal_(stem.projection.weight)
    ids = make_batch()["input_ids"]
    k, width, filters = stem.k, stem.width, stem.conv.out_features
    tokens = DNATokenizer(k).tokens
    weight = stem.conv.weight.detach().view(filters, width, 4).transpose(1, 2)  # (F, 4, width) as a Conv1d's
    bias = stem.conv.bias.detach()
    expected = torch.zeros(B, SEQ, filters)
    for b in range(B):
        # the window's bases one-hot, a zero column for every base of a special or [N] token
        columns = []
        for token_id in ids[b].tolist():
            token = tokens[token_id]
            for position in range(k):
                column = torch.zeros(4)
                if token_id >= DNATokenizer.first_kmer_id:
                    column[BASES.index(token[position])] = 1.0
                columns.append(column)
        bases = torch.stack(columns, dim=1)  # (4, L * k)
        padded = torch.nn.functional.pad(bases, (width // 2, width // 2))
        for token in range(SEQ):
            best = None
            for base in range(token * k, (token + 1) * k):
                value = torch.relu((weight * padded[:, base : base + width]).sum(dim=(1, 2)) + bias)
                best = value if best is None else torch.maximum(best, value)
            expected[b, token] = best
    torch.testing.assert_close(stem(ids), stem.projection(expected), rtol=1e-5, atol=1e-5)


def test_a_model_loaded_without_the_stem_computes_what_it_did():
    plain = EBertForFineTuningModel(EBertFinetuneConfig(name="ebert_finetune", num_labels=K, **tiny(vocab_size=KMER_VOCAB)))
    torch.manual_seed(1)
    with_stem = EBertForFineTuningModel(stem_config())
    missing = with_stem.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".dna_stem." in key for key in missing)
    plain.eval()
    with_stem.eval()
    batch = make_batch()
    torch.testing.assert_close(with_stem(batch), plain(batch))
    # ... and the stem learns: its projection gets a gradient at once, its filters once that moves
    with_stem.train()
    with_stem(batch).backward()
    stem = with_stem.ebert.embeddings.dna_stem
    assert stem.projection.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("keys,message", [
    ({"dna_conv_width": 4}, "dna_conv_width must be odd, got 4"),
    ({"vocab_size": 23}, "dna_conv_filters needs a k-mer vocabulary (6 specials + 4^k ids), but vocab_size is 23"),
])
def test_config_refuses_an_even_width_or_a_vocabulary_without_kmers(keys, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        stem_config(**keys)
