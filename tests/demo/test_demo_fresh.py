"""The demo writes only into a folder it made (a marker) and --fresh deletes only its own
outputs there, never through a symlink; a run folder of unknown origin is refused, not deleted."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebert_modelzoo.demo import stages
from ebert_modelzoo.demo.runs import plan_runs

REPO = Path(__file__).resolve().parents[2]


def demo_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ebert_modelzoo.demo", "--quick", "--no_progress", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("fresh", [True, False])
def test_a_folder_of_other_files_is_refused_untouched(tmp_path, fresh):
    home = tmp_path / "home"
    for name in ("data", "params", "runs", "report"):
        (home / name).mkdir(parents=True)
        (home / name / "mine.txt").write_text("precious")
    done = demo_cli("--output_dir", str(home), *(["--fresh"] if fresh else []))
    assert done.returncode == 1
    assert done.stderr == (f"error: {home}: holds files the demo did not write (no {stages.MARKER} marker); "
                           "give a new or empty --output_dir\n")
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == sorted(
        [n for n in ("data", "params", "runs", "report")] + [f"{n}/mine.txt" for n in ("data", "params", "runs", "report")])


def test_fresh_removes_only_the_demos_outputs_and_links_as_links(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    stages.claim(out, fresh=False)
    assert (out / stages.MARKER).is_file()
    (out / "data" / "x").mkdir(parents=True)
    (out / "notes.txt").write_text("the user's")
    outside.mkdir()
    (outside / "keep.txt").write_text("not the demo's")
    (out / "runs").symlink_to(outside)
    stages.claim(out, fresh=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([stages.MARKER, "notes.txt"])
    assert (outside / "keep.txt").read_text() == "not the demo's"


def test_a_run_folder_of_unknown_origin_is_refused(tmp_path):
    out = tmp_path / "out"
    stages.claim(out, fresh=False)
    run = plan_runs(out, quick=True)[0]
    model_dir = Path(run.params["trainer"]["init"]["model_dir"])
    model_dir.mkdir(parents=True)
    (model_dir / "checkpoint_9.mdl").write_text("someone else's")
    with pytest.raises(stages.DemoError, match="the demo has no record of writing it"):
        stages.train(run, out, "data", "code", None)
    assert (model_dir / "checkpoint_9.mdl").read_text() == "someone else's"
