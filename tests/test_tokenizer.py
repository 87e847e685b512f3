"""DNATokenizer: vocabulary layout, vectorised encoding against a per-base reference, vocab files."""
from itertools import product

import numpy as np
import pytest

from ebert_modelzoo.tokenizer import DNATokenizer


def reference_encode(seq: str, k: int) -> list[int]:
    """Straightforward per-k-mer encoding, written independently of the lookup tables."""
    kmers = ["".join(p) for p in product("ACGT", repeat=k)]
    index = {kmer: 6 + i for i, kmer in enumerate(kmers)}
    seq = seq.upper()
    return [index.get(seq[i:i + k], 5) for i in range(0, len(seq), k)]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_vocab_layout(k):
    tok = DNATokenizer(k)
    assert tok.vocab_size == 6 + 4**k
    assert tok.tokens[:6] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[N]"]
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id, tok.n_id) == (0, 1, 2, 3, 4, 5)
    assert tok.tokens[6] == "A" * k and tok.tokens[-1] == "T" * k
    assert tok.tokens[6:] == sorted(tok.tokens[6:])


@pytest.mark.parametrize("k", [1, 3, 6])
def test_encode_matches_reference_and_decodes(k):
    rng = np.random.default_rng(k)
    seq = "".join(rng.choice(list("ACGTacgtNnRYSWKMBDHV"), size=600 * k, p=[0.18] * 4 + [0.04] * 4 + [0.01] * 12))
    ids = DNATokenizer(k).encode(seq)
    assert ids.dtype == np.uint16
    assert ids.tolist() == reference_encode(seq, k)
    expected = "".join(
        "N" * k if any(c not in "ACGT" for c in seq[i:i + k].upper()) else seq[i:i + k].upper()
        for i in range(0, len(seq), k)
    )
    assert DNATokenizer(k).decode(ids) == expected


def test_bytes_and_str_agree():
    tok = DNATokenizer(3)
    assert tok.encode(b"ACGtttNNA").tolist() == tok.encode("ACGtttNNA").tolist() == [6 + 6, 6 + 63, 5]


def test_bad_length_and_character():
    tok = DNATokenizer(2)
    with pytest.raises(ValueError, match="multiple of k=2"):
        tok.encode("ACG")
    with pytest.raises(ValueError, match=r"invalid DNA character 'X' at position 3"):
        tok.encode("ACGX")
    with pytest.raises(ValueError, match=r"'-' at position 0"):
        tok.encode("-A")
    with pytest.raises(ValueError, match="k must be"):
        DNATokenizer(7)


def test_vocab_file_roundtrip_and_errors(tmp_path):
    tok = DNATokenizer(4)
    path = tmp_path / "vocab.txt"
    tok.save_vocab(path)
    lines = path.read_text().splitlines()
    assert lines[tok.mask_id] == "[MASK]" and lines[tok.first_kmer_id] == "AAAA"
    assert DNATokenizer.from_vocab_file(path).k == 4
    lines[10] = "AAGG"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"vocab.txt:11: expected token 'AACA', found 'AAGG'"):
        DNATokenizer.from_vocab_file(path)
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="not a k-mer vocabulary size"):
        DNATokenizer.from_vocab_file(path)
    with pytest.raises(FileNotFoundError):
        DNATokenizer.from_vocab_file(tmp_path / "missing.txt")


@pytest.mark.parametrize("k", [1, 2, 4, 6])
def test_reverse_complement_ids_read_the_other_strand(k):
    tok = DNATokenizer(k)
    table = tok.reverse_complement_ids()
    rng = np.random.default_rng(k)
    seq = "".join(rng.choice(list("ACGT"), size=30 * k))
    other = seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
    assert tok.decode(table[tok.encode(seq)[::-1]]) == other
    np.testing.assert_array_equal(table[table], np.arange(tok.vocab_size))  # twice = the same strand
    np.testing.assert_array_equal(table[: tok.first_kmer_id], np.arange(tok.first_kmer_id))  # specials, [N]
