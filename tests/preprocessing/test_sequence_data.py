"""Labelled sequences (CSV/TSV/FASTA) -> shards through the real create_sequence_data.py: tokens
against a per-row reference, labels, row ids, split column, FASTA labels, padding seen by the
processor, one-line errors that leave nothing behind."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from ebert_modelzoo.data.processors import EBertFinetuningDataProcessor
from ebert_modelzoo.tokenizer import DNATokenizer
from tests.preprocessing.helpers import assert_clean_failure

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "data_processing" / "create_sequence_data.py"


def run_seq(*args: str, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--no_progress", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def random_rows(n: int, seed: int, max_len: int = 380) -> list[tuple[str, str, int, str]]:
    """(id, sequence, label a, label b) with lower case, Ns and one missing label mixed in."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        seq = "".join(rng.choice(list("ACGTacgtN"), size=int(rng.integers(1, max_len))))
        rows.append((f"r{seed}_{i}", seq, int(rng.integers(0, 2)), ["0", "1", ""][int(rng.integers(0, 3))]))
    return rows


def write_csv(path: Path, rows, sep: str = ",", split: list[str] | None = None) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as fh:
        fh.write(sep.join(["id", "sequence", "a", "b"] + (["split"] if split else [])) + "\n")
        for i, r in enumerate(rows):
            fh.write(sep.join([r[0], r[1], str(r[2]), r[3]] + ([split[i]] if split else [])) + "\n")
    return path


def centred_reference(seq: str, window: int, k: int) -> np.ndarray:
    """What one row should become, computed per row with the plain tokenizer."""
    tok = DNATokenizer(k)
    left = (window - len(seq)) // 2 // k * k
    padded = "-" * left + seq + "-" * (window - left - len(seq))
    ids = []
    for j in range(0, window, k):
        kmer = padded[j:j + k]
        if set(kmer) == {"-"}:
            ids.append(tok.pad_id)
        elif "-" in kmer:
            ids.append(tok.n_id)
        else:
            ids.append(int(tok.encode(kmer)[0]))
    return np.asarray(ids, dtype=np.uint16)


def read_split(folder: Path) -> dict[str, np.ndarray]:
    params = json.loads((folder / "data_params.json").read_text())
    parts: dict[str, list] = {}
    for shard in params["shards"]:
        with h5py.File(folder / shard["file"], "r") as f:
            for key in f:
                parts.setdefault(key, []).append(f[key][:])
    return {k: np.concatenate(v, axis=1 if k == "labels" else 0) for k, v in parts.items()}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tables")
    rows = {s: random_rows(n, seed) for s, n, seed in (("train", 150, 0), ("dev", 40, 1), ("test", 30, 2))}
    for split, r in rows.items():
        write_csv(tmp / f"{split}.csv", r)
    run_seq("--train", "train.csv", "--dev", "dev.csv", "--test", "test.csv", "--output_dir", "out",
            "--window_length", "400", cwd=tmp)
    return tmp, rows


def test_rows_become_centred_tokens_labels_and_ids(tables):
    tmp, rows = tables
    for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        stored = read_split(tmp / "out" / split)
        params = json.loads((tmp / "out" / split / "data_params.json").read_text())
        assert params["contigs"] == [f"{name}.csv"] and params["cell_types"] == ["sequence"]
        assert params["labels"]["names"] == ["a", "b"] and params["window_length"] == 400
        want = np.stack([centred_reference(r[1], 400, 4) for r in rows[name]])
        np.testing.assert_array_equal(stored["tokens"], want)
        np.testing.assert_array_equal(stored["labels"][0, :, 0], [r[2] for r in rows[name]])
        np.testing.assert_array_equal(stored["labels"][0, :, 1], [{"0": 0, "1": 1, "": -1}[r[3]] for r in rows[name]])
        assert [i.decode() for i in stored["row_id"]] == [r[0] for r in rows[name]]
        np.testing.assert_array_equal(stored["window_start"], np.arange(len(rows[name])))
        np.testing.assert_array_equal(stored["sequence_length"], [len(r[1]) for r in rows[name]])


def test_processor_does_not_attend_to_padding(tables):
    tmp, rows = tables
    proc = EBertFinetuningDataProcessor({"data_processor": "EBertFinetuningDataProcessor", "batch_size": 10,
                                         "data_dir": str(tmp / "out" / "test"), "shuffle": False,
                                         "max_sequence_length": 104})
    batch = next(iter(proc.create_dataloader()))
    tokens = read_split(tmp / "out" / "test")["tokens"][:10]
    np.testing.assert_array_equal(batch["attention_mask"][:, 1:101].numpy(), tokens != 0)
    assert (batch["attention_mask"][:, [0, 101]] == 1).all()
    np.testing.assert_array_equal(batch["seq_label_weights"][:, 1].numpy(), [r[3] != "" for r in rows["test"][:10]])


def test_split_column_tsv_gz_and_fasta_give_the_same_shards(tables, tmp_path):
    _, rows = tables
    table_rows = rows["train"] + rows["dev"]
    split = ["train"] * len(rows["train"]) + ["dev"] * len(rows["dev"])
    order = np.random.default_rng(3).permutation(len(table_rows))  # splits interleaved in the table
    write_csv(tmp_path / "all.tsv.gz", [table_rows[i] for i in order], sep="\t", split=[split[i] for i in order])
    run_seq("--table", "all.tsv.gz", "--split_column", "split", "--output_dir", "t", "--window_length", "400",
            cwd=tmp_path)
    with open(tmp_path / "train.fa", "w") as fh:
        for r in rows["train"]:
            fh.write(f">{r[0]} a={r[2]} b={r[3]}\n{r[1][:60]}\n{r[1][60:]}\n")
    run_seq("--train", "train.fa", "--output_dir", "f", "--window_length", "400", cwd=tmp_path)
    reference = read_split(tables[0] / "out" / "train")
    in_train = [i for i in order if split[i] == "train"]
    from_table = read_split(tmp_path / "t" / "train")
    np.testing.assert_array_equal(from_table["tokens"], reference["tokens"][in_train])
    np.testing.assert_array_equal(from_table["labels"], reference["labels"][:, in_train])
    assert len(read_split(tmp_path / "t" / "validation")["tokens"]) == len(rows["dev"])
    from_fasta = read_split(tmp_path / "f" / "train")
    for key in ("tokens", "labels", "row_id"):
        np.testing.assert_array_equal(from_fasta[key], reference[key])


def test_window_length_defaults_to_the_longest_sequence_and_params_fit(tmp_path):
    rows = random_rows(20, 5, max_len=450)
    write_csv(tmp_path / "train.csv", rows)
    run_seq("--train", "train.csv", "--output_dir", "out", cwd=tmp_path)
    params = json.loads((tmp_path / "out" / "train" / "data_params.json").read_text())
    longest = max(len(r[1]) for r in rows)
    assert params["window_length"] == -(-longest // 200) * 200 and longest > 200
    written = yaml.safe_load((tmp_path / "out" / "params.yaml").read_text())
    model = written["trainer"]["init"]["model"]
    assert model["num_labels"] == 2 and model["label_names"] == ["a", "b"] and model["vocab_size"] == 262
    loader = written["trainer"]["fit"]["train_dataloader"]
    assert Path(loader["data_dir"]) == (tmp_path / "out" / "train").resolve() and loader["max_sequence_length"] >= params["window_length"] // 4 + 2


@pytest.mark.parametrize("content, needles", [
    ("id,sequence,a\nx,ACGT,1\ny,ACGTACGTACGT,0\n", ["train.csv:3:", "longer than the window (8 bp)", "window_length"]),
    ("id,sequence,a\nx,ACGT,1\ny,ACXT,0\n", ["train.csv:3:", "invalid DNA character 'X'"]),
    ("id,sequence,a\nx,ACGT,1\ny,ACGT,yes\n", ["train.csv:3:", "label 'a' is 'yes'"]),
    ("id,seqs,a\nx,ACGT,1\n", ["train.csv:1:", "no column 'sequence'", "sequence_column"]),
    ("id,sequence,a\nx,ACGT,1\ny,ACGT\n", ["train.csv:3:", "2 fields, the header has 3"]),
    ("id,sequence\nx,ACGT\n", ["train.csv", "no label columns"]),
])
def test_bad_rows_fail_with_one_line_and_leave_nothing(tmp_path, content, needles):
    (tmp_path / "train.csv").write_text(content)
    good = [("g0", "ACGT" * 5, 1, "0")]
    write_csv(tmp_path / "dev.csv", good)
    proc = run_seq("--train", "train.csv", "--dev", "dev.csv", "--output_dir", "out", "--window_length", "8",
                   "--bin_size", "4", "--k", "2", cwd=tmp_path, check=False)
    assert_clean_failure(proc, *needles, out=tmp_path / "out")


def test_a_rebuild_replaces_the_splits(tables, tmp_path):
    tmp, rows = tables
    write_csv(tmp_path / "train.csv", rows["train"][:20])
    run_seq("--train", "train.csv", "--output_dir", "out", "--window_length", "400", cwd=tmp_path)
    write_csv(tmp_path / "train.csv", rows["train"][:30])
    run_seq("--train", "train.csv", "--output_dir", "out", "--window_length", "400", cwd=tmp_path)
    assert len(read_split(tmp_path / "out" / "train")["tokens"]) == 30
    assert not (tmp_path / "out" / ".building").exists()


def test_unreadable_bytes_name_the_file(tmp_path):
    (tmp_path / "train.csv").write_bytes(b"id,sequence,a\nx,ACGT,1\ny,AC\xff\xfeGT,0\n")
    proc = run_seq("--train", "train.csv", "--output_dir", "out", "--window_length", "8", "--bin_size", "4",
                   "--k", "2", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "train.csv:", "not UTF-8", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
