"""Motif file reading, log-odds, and the vectorised two-strand scan against a per-position loop."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ebert_modelzoo.data import motifs
from ebert_modelzoo.errors import MotifError
from ebert_modelzoo.tokenizer import DNATokenizer

# JASPAR MA0139.1 (CTCF) counts, A C G T rows: a real 19-bp motif
CTCF = np.array([
    [87, 167, 281, 56, 8, 744, 40, 107, 851, 5, 333, 54, 12, 56, 104, 372, 82, 117, 402],
    [291, 145, 49, 800, 903, 13, 528, 433, 11, 0, 3, 12, 0, 8, 733, 13, 482, 322, 181],
    [76, 414, 449, 21, 0, 65, 334, 48, 32, 903, 566, 504, 890, 775, 5, 507, 307, 73, 266],
    [459, 187, 134, 36, 2, 91, 11, 324, 18, 3, 9, 341, 8, 71, 70, 17, 37, 402, 89],
], dtype=np.float64)
BACKGROUND = np.array([0.3, 0.2, 0.2, 0.3])
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}


def reference_scan(sequence: str, pwm: np.ndarray) -> np.ndarray:
    """Per-position, per-strand Python loop: what ``motifs.scan`` must equal."""
    width = pwm.shape[1]
    rows = {b: i for i, b in enumerate("ACGT")}
    rc = "".join(COMPLEMENT[b] for b in reversed(sequence))
    out = []
    for i in range(len(sequence) - width + 1):
        best = -math.inf
        for site in (sequence[i : i + width], rc[len(sequence) - i - width : len(sequence) - i]):
            if "N" in site:
                continue
            best = max(best, sum(pwm[rows[b], j] for j, b in enumerate(site)))
        out.append(best)
    return np.array(out)


def write_motifs(path: Path, payload: object) -> Path:
    path.write_text(json.dumps(payload))
    return path


def motif_entry(tf: str, counts: np.ndarray) -> dict:
    return {"tf": tf, "matrix_id": f"MA_{tf}", "counts": {b: counts[i].tolist() for i, b in enumerate("ACGT")}}


def random_sequence(rng: np.random.Generator, length: int, n_fraction: float = 0.0) -> str:
    bases = rng.choice(list("ACGT"), size=length, p=BACKGROUND)
    bases[rng.random(length) < n_fraction] = "N"
    return "".join(bases)


def implant(sequence: str, site: str, at: int) -> str:
    return sequence[:at] + site + sequence[at + len(site) :]


def test_load_demo_shape_and_log_odds(tmp_path: Path) -> None:
    path = write_motifs(tmp_path / "m.json", {
        "source": "test", "background": BACKGROUND.tolist(), "pseudocount": 0.8,
        "motifs": [motif_entry("CTCF", CTCF), motif_entry("ONE", np.eye(4))],
    })
    loaded = motifs.load_motifs(path)
    assert loaded.tfs == ("CTCF", "ONE")
    assert loaded.get("CTCF").width == 19
    lo = loaded.log_odds("CTCF")
    column = (CTCF[:, 0] + 0.8 * BACKGROUND) / (CTCF[:, 0].sum() + 0.8)
    np.testing.assert_allclose(lo[:, 0], np.log2(column / BACKGROUND))
    # probabilities (columns summing to 1) are accepted like counts
    assert np.all(np.isfinite(loaded.log_odds("ONE")))
    assert loaded.log_odds("ONE")[0, 0] > 0 > loaded.log_odds("ONE")[1, 0]


def test_defaults_uniform_background(tmp_path: Path) -> None:
    loaded = motifs.load_motifs(write_motifs(tmp_path / "m.json", {"motifs": [motif_entry("X", CTCF)]}))
    np.testing.assert_allclose(loaded.background, 0.25)
    assert loaded.pseudocount == motifs.DEFAULT_PSEUDOCOUNT


@pytest.mark.parametrize("payload, message", [
    ([], "non-empty list 'motifs'"),
    ({"motifs": [{"tf": "X", "counts": {}}]}, "motifs[0]: key 'matrix_id' is missing"),
    ({"motifs": [{"tf": "X", "matrix_id": "m", "counts": {"A": [1], "C": [1], "G": [1]}}]}, "exactly the keys"),
    ({"motifs": [{"tf": "X", "matrix_id": "m", "counts": {"A": [1, 2], "C": [1], "G": [1], "T": [1]}}]}, "equal-length"),
    ({"motifs": [{"tf": "X", "matrix_id": "m", "counts": {"A": [-1], "C": [1], "G": [1], "T": [1]}}]}, ">= 0"),
    ({"motifs": [{"tf": "X", "matrix_id": "m", "counts": {"A": [0], "C": [0], "G": [0], "T": [0]}}]}, "sums to 0"),
    ({"background": [0.5, 0.5, 0.5, 0.5], "motifs": [motif_entry("X", CTCF)]}, "'background'"),
    ({"motifs": [motif_entry("X", CTCF), motif_entry("X", CTCF)]}, "more than one motif for TF X"),
])
def test_bad_files_name_the_problem(tmp_path: Path, payload: object, message: str) -> None:
    path = write_motifs(tmp_path / "bad.json", payload)
    with pytest.raises(MotifError, match=str(path)) as err:
        motifs.load_motifs(path)
    assert message in str(err.value)


def test_missing_file_and_unknown_tf(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.json"):
        motifs.load_motifs(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{\n  oops")
    with pytest.raises(MotifError, match="broken.json:2: invalid JSON"):
        motifs.load_motifs(tmp_path / "broken.json")
    loaded = motifs.load_motifs(write_motifs(tmp_path / "m.json", {"motifs": [motif_entry("CTCF", CTCF)]}))
    with pytest.raises(MotifError, match="no motif for TF 'REST'.*CTCF"):
        loaded.get("REST")


@pytest.mark.parametrize("n_fraction", [0.0, 0.05, 0.3])
def test_scan_matches_reference_on_random_sequences(n_fraction: float) -> None:
    rng = np.random.default_rng(1)
    pwm = motifs.log_odds(CTCF, BACKGROUND, 0.8)
    for length in (19, 20, 57, 200):
        sequence = random_sequence(rng, length, n_fraction)
        np.testing.assert_allclose(motifs.scan(motifs.encode_dna(sequence), pwm), reference_scan(sequence, pwm), rtol=1e-5)


def test_scan_float64_is_exact_and_float32_is_the_default() -> None:
    rng = np.random.default_rng(7)
    pwm = motifs.log_odds(CTCF, BACKGROUND, 0.8)
    sequence = random_sequence(rng, 300, 0.05)
    codes = motifs.encode_dna(sequence)
    assert motifs.scan(codes, pwm).dtype == np.float32
    exact = motifs.scan(codes, pwm, np.float64)
    assert exact.dtype == np.float64
    np.testing.assert_allclose(exact, reference_scan(sequence, pwm), rtol=1e-12)


def test_scan_finds_implanted_sites_on_either_strand() -> None:
    rng = np.random.default_rng(2)
    pwm = motifs.log_odds(CTCF, BACKGROUND, 0.8)
    consensus = "".join("ACGT"[i] for i in pwm.argmax(axis=0))
    rc = "".join(COMPLEMENT[b] for b in reversed(consensus))
    background = random_sequence(rng, 300)
    best_possible = pwm.max(axis=0).sum()
    for site, at in ((consensus, 40), (rc, 211)):
        sequence = implant(background, site, at)
        scores = motifs.scan(motifs.encode_dna(sequence), pwm)
        np.testing.assert_allclose(scores, reference_scan(sequence, pwm), rtol=1e-5)
        assert int(np.argmax(scores)) == at
        assert scores[at] == pytest.approx(best_possible, rel=1e-5)


def test_reverse_complement_symmetry() -> None:
    rng = np.random.default_rng(3)
    pwm = motifs.log_odds(CTCF, BACKGROUND, 0.8)
    sequence = random_sequence(rng, 500, 0.02)
    rc = "".join(COMPLEMENT[b] for b in reversed(sequence))
    forward = motifs.scan(motifs.encode_dna(sequence), pwm)
    backward = motifs.scan(motifs.encode_dna(rc), pwm)
    np.testing.assert_allclose(forward, backward[::-1], rtol=1e-6)
    assert motifs.max_score(motifs.encode_dna(sequence), pwm) == pytest.approx(
        motifs.max_score(motifs.encode_dna(rc), pwm), rel=1e-6
    )


def test_n_never_matches() -> None:
    pwm = motifs.log_odds(CTCF, BACKGROUND, 0.8)
    consensus = "".join("ACGT"[i] for i in CTCF.argmax(axis=0))
    sequence = "A" * 30 + consensus[:9] + "N" + consensus[10:] + "A" * 30
    scores = motifs.scan(motifs.encode_dna(sequence), pwm)
    covering = np.arange(30 + 9 - 18, 30 + 9 + 1)
    assert np.all(np.isneginf(scores[covering]))
    assert np.all(np.isfinite(np.delete(scores, covering)))
    assert motifs.max_score(motifs.encode_dna("N" * 40), pwm) == -np.inf
    assert motifs.min_score(pwm) < motifs.max_score(motifs.encode_dna(sequence), pwm)


def test_batched_windows_equal_single_scans() -> None:
    rng = np.random.default_rng(4)
    pwm = motifs.log_odds(CTCF, BACKGROUND, 0.8)
    windows = [random_sequence(rng, 64, 0.05) for _ in range(12)]
    codes = np.stack([motifs.encode_dna(w) for w in windows]).reshape(3, 4, 64)
    batched = motifs.max_score(codes, pwm)
    assert batched.shape == (3, 4)
    single = np.array([reference_scan(w, pwm).max() for w in windows]).reshape(3, 4)
    np.testing.assert_allclose(batched, single, rtol=1e-5)


def test_codes_from_tokens_k1_and_k3() -> None:
    k1 = DNATokenizer(1)
    tokens = k1.encode("ACGTNA")[None]
    np.testing.assert_array_equal(motifs.codes_from_tokens(tokens, k1), [[0, 1, 2, 3, 4, 0]])
    k3 = DNATokenizer(3)
    np.testing.assert_array_equal(motifs.codes_from_tokens(k3.encode("ACGANGTTA"), k3), [0, 1, 2, 4, 4, 4, 3, 3, 0])
    rng = np.random.default_rng(6)
    sequence = random_sequence(rng, 99, 0.0)
    np.testing.assert_array_equal(motifs.codes_from_tokens(k3.encode(sequence), k3), motifs.encode_dna(sequence))
    with pytest.raises(ValueError, match=r"non-DNA ids \(\[CLS\]\)"):
        motifs.codes_from_tokens(np.array([k1.cls_id, 6]), k1)
    with pytest.raises(ValueError, match="token ids must be in"):
        motifs.codes_from_tokens(np.array([99]), k1)


def test_scan_rejects_bad_shapes() -> None:
    pwm = motifs.log_odds(CTCF, BACKGROUND, 0.8)
    with pytest.raises(ValueError, match="shorter than the motif"):
        motifs.scan(motifs.encode_dna("ACGT"), pwm)
    with pytest.raises(ValueError, match=r"pwm must be \[4, L\]"):
        motifs.scan(motifs.encode_dna("ACGT" * 10), pwm[:3])


def test_motif_tracks_score_sites_in_the_bin_of_their_centre(tmp_path: Path) -> None:
    """Per-bin tracks: a planted consensus (either strand) gives 1.0 in the bin holding the site's
    centre; every bin equals the best reference score of sites centred there / the consensus
    score, clipped to [0, 1]; [N] tokens never match."""
    path = write_motifs(tmp_path / "m.json", {"background": BACKGROUND.tolist(), "motifs": [motif_entry("CTCF", CTCF)]})
    motif_set = motifs.load_motifs(path)
    pwm = motif_set.log_odds("CTCF")
    tokenizer = DNATokenizer(4)
    tracks = motifs.MotifTracks.build(motif_set, ("CTCF",), tokenizer, tokens_per_bin=25)  # 100 bp bins
    consensus = "".join("ACGT"[i] for i in pwm.argmax(axis=0))
    rc = "".join(COMPLEMENT[b] for b in reversed(consensus))
    rng = np.random.default_rng(3)
    seqs = [implant(random_sequence(rng, 400), consensus, 230),   # centre 239: bin 2
            implant(random_sequence(rng, 400), rc, 91),           # centre 100: bin 1 (its first base)
            "N" * 200 + random_sequence(rng, 200)]
    tokens = np.stack([tokenizer.encode(s) for s in seqs])
    got = tracks(tokens)
    assert got.shape == (3, 4, 1) and got.dtype == np.float32
    assert got[0, 2, 0] == pytest.approx(1.0) and got[1, 1, 0] == pytest.approx(1.0)
    assert np.all(got[2, :2] == 0.0)
    best = pwm.max(axis=0).sum()
    width = pwm.shape[1]
    for w, seq in enumerate(seqs):
        ref = reference_scan(seq, pwm)
        centre = np.arange(len(ref)) + width // 2
        for b in range(4):
            in_bin = ref[(centre >= 100 * b) & (centre < 100 * (b + 1))]
            assert got[w, b, 0] == pytest.approx(np.clip(in_bin.max() / best, 0, 1), abs=1e-5)
    with pytest.raises(ValueError, match="non-DNA"):
        tracks(np.full((1, 100), tokenizer.pad_id))
