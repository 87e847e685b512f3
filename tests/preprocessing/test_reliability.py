"""The preprocessing CLI under concurrency and hostile input: one run per output folder (parts of
one dataset side by side), a killed run's lock taken over, an input edited in place noticed,
one-line errors and no output folder left for inputs that fail."""
from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ebert_modelzoo.folder_lock import folder_lock
from tests.preprocessing.conftest import LABELS
from tests.preprocessing.helpers import DATA, assert_clean_failure

HOST = os.uname().nodename


def refused(proc: subprocess.CompletedProcess, folder: Path, holder: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {folder}: in use by another preprocessing run ({holder}); wait for it to end or use another folder")


def test_one_run_per_output_folder(tmp_path, make_config, run_cli):
    config, out = make_config(tmp_path), tmp_path / "out"
    with folder_lock(out, "preprocessing run"):
        refused(run_cli("pretraining", config, check=False), out, f"pid {os.getpid()} on {HOST}")
        refused(run_cli("pretraining", config, "--shard", "1/2", check=False), out, f"pid {os.getpid()} on {HOST}")
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the refused runs wrote nothing
    run_cli("pretraining", config)


def test_parts_run_side_by_side_but_not_twice(tmp_path, make_config, run_cli):
    config, out = make_config(tmp_path), tmp_path / "out"
    with folder_lock(out, "preprocessing run", part="part-0-of-2"):
        run_cli("pretraining", config, "--shard", "1/2")
        refused(run_cli("pretraining", config, check=False), out, f"pid {os.getpid()} on {HOST}")
        proc = run_cli("pretraining", config, "--shard", "0/2", check=False)
        assert proc.returncode == 2 and "in use by another preprocessing run of part part-0-of-2" in proc.stderr
    run_cli("pretraining", config, "--shard", "0/2")
    assert (out / "train" / "data_params.json").is_file()


def test_a_killed_runs_lock_is_taken_over(tmp_path, make_config, run_cli):
    config, out = make_config(tmp_path), tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from ebert_modelzoo.folder_lock import folder_lock\n"
        f"with folder_lock({str(out)!r}, 'preprocessing run'):\n    print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert holder.stdout.readline().strip() == "held"
    refused(run_cli("pretraining", config, check=False), out, f"pid {holder.pid} on {HOST}")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    run_cli("pretraining", config)
    assert (out / "train" / "data_params.json").is_file()


def test_an_input_edited_in_place_is_noticed(tmp_path, make_config, run_cli):
    """Same size, same mtime, one state changed: the input hash cache must not hide it."""
    bed = tmp_path / "E003.bed"
    shutil.copy(DATA / "E003_15_coreMarks_segments.bed", bed)
    cells = [{"name": "E003", "segmentation": str(bed), "tracks": {}}]
    config = make_config(tmp_path, cell_types=cells, signal={"transform": "arcsinh", "tracks": []})
    run_cli("pretraining", config)
    before = bed.stat()
    text = bed.read_text()
    line = next(l for l in text.splitlines() if l.endswith("\tE1") or "\t1_" in l)
    edited = line[:-1] + ("2" if line[-1] != "2" else "3")
    bed.write_text(text.replace(line, edited, 1))
    os.utime(bed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (bed.stat().st_size, bed.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert_clean_failure(run_cli("pretraining", config, check=False), "built from another config or other inputs",
                         out=tmp_path / "nothing")


def _latin1(tmp: Path, source: Path, name: str) -> Path:
    raw = source.read_bytes() if source.suffix != ".gz" else gzip.decompress(source.read_bytes())
    cut = raw.index(b"\n", len(raw) // 2) + 1
    (tmp / name).write_bytes(raw[:cut] + b"caf\xe9" + raw[cut:])
    return tmp / name


def _truncated_gz(tmp: Path, source: Path, name: str) -> Path:
    data = gzip.compress(source.read_bytes() if source.suffix != ".gz" else gzip.decompress(source.read_bytes()))
    (tmp / name).write_bytes(data[:len(data) // 2])
    return tmp / name


SEG = DATA / "E003_15_coreMarks_segments.bed"


def _seg_only(path: Path) -> dict:
    return {"cell_types": [{"name": "E003", "segmentation": str(path), "tracks": {}}],
            "signal": {"transform": "arcsinh", "tracks": []}}


def _dream(path: Path) -> dict:
    labels = {**LABELS, "tfs": [{"name": "CTCF", "dream_tsv": str(path)}]}
    return {"labels": labels}


@pytest.mark.parametrize("kind, sections, needles", [
    ("pretraining", lambda t: _seg_only(_latin1(t, SEG, "s.bed")), ["s.bed:", "not UTF-8 text (byte 0xe9)"]),
    ("pretraining", lambda t: _seg_only(_truncated_gz(t, SEG, "s.bed.gz")), ["s.bed.gz:", "ends early (truncated .gz)"]),
    ("finetuning", lambda t: _dream(_latin1(t, DATA / "CTCF.train.labels.tsv.gz", "l.tsv")), ["l.tsv:", "not UTF-8"]),
    ("finetuning", lambda t: _dream(_truncated_gz(t, DATA / "CTCF.train.labels.tsv.gz", "l.tsv.gz")),
     ["l.tsv.gz:", "truncated .gz"]),
    ("pretraining", lambda t: {"cell_types": [{"name": "E003", "segmentation": str(SEG), "tracks": {"DNase": 5}}]},
     ["cell_types[0].tracks.DNase", "valid string"]),
    ("pretraining", lambda t: {"genome": {"fasta": "~nosuchuser/x.fa"}}, ["~nosuchuser", "no such user"]),
    ("pretraining", lambda t: {"genome": {"fasta": "/tmp/a\0b.fa"}}, ["NUL byte"]),
])
def test_hostile_inputs_one_line_and_nothing_written(tmp_path, make_config, run_cli, kind, sections, needles):
    config = make_config(tmp_path, kind, **sections(tmp_path))
    assert_clean_failure(run_cli(kind, config, check=False), *needles, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_cannot_be_made_is_one_capped_line(tmp_path, make_config, run_cli):
    config = make_config(tmp_path, output={"output_dir": str(tmp_path / ("d" * 100_000))})
    proc = run_cli("pretraining", config, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {str(tmp_path)[:40]}") and "characters left out]...ddd" in last
    assert last.endswith(": cannot create or lock the folder (File name too long)")
    assert len(last) < 1100


def test_crlf_and_lf_beds_read_the_same(tmp_path):
    from ebert_modelzoo.preprocessing.segmentation import read_segmentation

    lf = SEG.read_text()
    (tmp_path / "crlf.bed").write_bytes(lf.replace("\n", "\r\n").encode())
    lengths = {"X": 155_270_560}
    a, b = read_segmentation(SEG, lengths), read_segmentation(tmp_path / "crlf.bed", lengths)
    assert a.state_names == b.state_names and a.segments.keys() == b.segments.keys()
    for contig in a.segments:
        for x, y in zip(a.segments[contig], b.segments[contig]):
            assert (x == y).all()
