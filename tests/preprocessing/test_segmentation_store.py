"""The on-disk segmentation store: lookups equal the parsed BED's, entries are keyed by the BED's
bytes and the genome, and unused or unfinished entries are pruned."""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing.segmentation import read_segmentation
from ebert_modelzoo.preprocessing.segmentation_store import (COARSE_STEP, commit, discard, entry_key,
                                                             open_segmentation, prune)
from ebert_modelzoo.preprocessing.writer import sha256_file


def write_bed(path: Path, contigs: dict[str, int], rng: np.random.Generator, offset: int = 0) -> Path:
    """A BED with ``n`` segments a contig: 1-30 bp wide, gaps of 0-20 bp, states 1-15, from ``offset``."""
    lines = []
    for contig, n in contigs.items():
        widths = rng.integers(1, 31, size=n)
        gaps = rng.integers(0, 21, size=n) * (rng.random(n) < 0.2)
        starts = offset + np.cumsum(gaps + widths) - widths
        ends = starts + widths
        states = rng.integers(1, 16, size=n)
        lines += [f"{contig}\t{s}\t{e}\tE{k}\n" for s, e, k in zip(starts.tolist(), ends.tolist(), states.tolist())]
    path.write_text("".join(lines))
    return path


def probes(seg, contig: str, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions from before the first to past the last segment, plus every segment edge."""
    starts, ends, _ = seg.segments[contig]
    lo, hi = int(starts[0]) - 50, int(ends[-1]) + 50
    return np.unique(np.concatenate([rng.integers(lo, hi, size=5000), starts, ends - 1, ends]))


@pytest.mark.parametrize("longest", [250_000_000, 3_000_000_000])
def test_lookups_equal_the_parsed_bed(tmp_path, longest):
    rng = np.random.default_rng(0)
    lengths = {"chr1": longest, "chr2": 1_000_000, "chr3": 500_000}
    offset = 2_500_000_000 if longest > 2**31 else 1000  # coordinates past int32 on the long genome
    bed = write_bed(tmp_path / "s.bed", {"chr1": 5 * COARSE_STEP + 17}, rng, offset=offset)
    with open(bed, "a") as fh:
        fh.write(write_bed(tmp_path / "b.bed", {"chr2": 3 * COARSE_STEP, "chr3": 10}, rng).read_text())
    parsed = read_segmentation(bed, lengths)
    stored = open_segmentation(bed, sha256_file(bed), lengths, tmp_path / "store")
    assert stored.coordinates == (np.int64 if longest > 2**31 else np.int32)
    assert stored.state_names == parsed.state_names and list(stored.contigs) == ["chr1", "chr2", "chr3"]
    for contig in stored.contigs:
        positions = probes(parsed, contig, rng)
        expected = parsed.states_at(contig, positions)
        assert (expected > 0).any() and (expected == 0).any()
        assert stored.states_at(contig, positions).tolist() == expected.tolist()
        for lo in rng.integers(0, len(positions) - 200, size=50):  # short runs, as a shard asks
            part = positions[lo:lo + rng.integers(1, 200)]
            assert stored.states_at(contig, part).tolist() == parsed.states_at(contig, part).tolist()
    assert stored.states_at("chrUn", np.arange(10)).tolist() == [0] * 10


def test_entries_are_keyed_by_bytes_and_genome(tmp_path):
    rng = np.random.default_rng(1)
    bed = write_bed(tmp_path / "s.bed", {"chr1": 100}, rng)
    lengths, root = {"chr1": 1_000_000}, tmp_path / "store"
    sha = sha256_file(bed)
    first = open_segmentation(bed, sha, lengths, root)
    assert first.final == root / entry_key(sha, lengths) and first.entry.name.startswith(".")  # private until commit
    commit(first)
    assert first.entry == root / entry_key(sha, lengths) and first.final is None
    assert [p.name for p in root.iterdir()] == [entry_key(sha, lengths)]
    # the same bytes again: the entry is read, the BED is not parsed
    bed.write_text("chr1\t5\t1\tE1\n")
    again = open_segmentation(bed, sha, lengths, root)
    assert again.entry == first.entry and again.state_names == first.state_names
    # other bytes or another genome: parsed again, and a bad file stores nothing
    with pytest.raises(InputError, match=r"s\.bed:1: empty or negative record"):
        open_segmentation(bed, sha256_file(bed), lengths, root)
    assert entry_key(sha, lengths) != entry_key(sha, {"chr1": 1_000_001})
    assert len(list(root.iterdir())) == 1


def test_prune_removes_unused_entries_and_dead_runs_leftovers(tmp_path):
    rng = np.random.default_rng(2)
    lengths, root = {"chr1": 1_000_000}, tmp_path / "store"
    shas = []
    for name in ("a", "b"):
        bed = write_bed(tmp_path / f"{name}.bed", {"chr1": 50}, rng)
        shas.append(sha256_file(bed))
        commit(open_segmentation(bed, shas[-1], lengths, root))
    host = socket.gethostname()
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = finished.pid
    leftovers = {owner: root / f".{entry_key(shas[0], lengths)}.{owner}.tmp"
                 for owner in (f"{host}-{dead}", f"{host}-{os.getpid()}", f"other-host-{dead}")}
    for path in leftovers.values():
        path.mkdir()
    prune(root, keep={entry_key(shas[0], lengths)}, owner=tmp_path)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [entry_key(shas[0], lengths), leftovers[f"{host}-{os.getpid()}"].name, leftovers[f"other-host-{dead}"].name])


def test_cli_rerun_reuses_the_entries_and_clears_a_killed_runs_leftover(tmp_path, make_config, run_cli):
    config = make_config(tmp_path)
    run_cli("pretraining", config)
    root = tmp_path / "out" / ".cache" / "segmentations"
    entries = {p.name: p.stat().st_ino for p in root.iterdir()}
    assert len(entries) == 2  # one per cell type's BED
    finished = subprocess.Popen(["true"])
    finished.wait()
    leftover = root / f".{next(iter(entries))}.{socket.gethostname()}-{finished.pid}.tmp"
    leftover.mkdir()
    (leftover / "starts.bin").write_bytes(b"half")
    rerun = run_cli("pretraining", config)
    assert "skipping" in rerun.stderr
    assert {p.name: p.stat().st_ino for p in root.iterdir()} == entries


def test_prune_deletes_nothing_through_a_symlinked_store(tmp_path):
    """A store reached through a symlink (here .cache -> a folder outside the output folder) is
    not the run's to prune: its unused entries stay."""
    rng = np.random.default_rng(3)
    lengths, outside = {"chr1": 1_000_000}, tmp_path / "elsewhere"
    bed = write_bed(tmp_path / "a.bed", {"chr1": 50}, rng)
    commit(open_segmentation(bed, sha256_file(bed), lengths, outside / "segmentations"))
    (outside / "segmentations" / "precious").mkdir()
    output = tmp_path / "out"
    output.mkdir()
    (output / ".cache").symlink_to(outside)
    prune(output / ".cache" / "segmentations", keep=set(), owner=output)
    assert len(list((outside / "segmentations").iterdir())) == 2


def test_discard_removes_only_an_uncommitted_entry(tmp_path):
    rng = np.random.default_rng(4)
    lengths, root = {"chr1": 1_000_000}, tmp_path / "store"
    bed = write_bed(tmp_path / "a.bed", {"chr1": 50}, rng)
    staged = open_segmentation(bed, sha256_file(bed), lengths, root)
    discard(staged)
    assert list(root.iterdir()) == []
