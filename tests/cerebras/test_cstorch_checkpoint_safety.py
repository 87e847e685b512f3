"""The cstorch backend's checkpoints: a checksum beside each, a corrupt newest one passed over
for the previous one, and crafted files refused without running their code (cstorch.load, which
the backend does not use for reading, runs it under torch 2.4)."""
from __future__ import annotations

import pytest

cstorch = pytest.importorskip("cerebras.pytorch")
pytestmark = pytest.mark.cerebras

from tests.crafted_checkpoints import crafted_checkpoints  # noqa: E402
from tests.run_cases import data_for, run_py, write_params  # noqa: E402


def test_checksums_fallback_and_crafted_files(tmp_path):
    data = data_for("ebert_tiny.yaml", tmp_path / "data", shard_windows=(16, 16))
    params = write_params("ebert_tiny.yaml", tmp_path / "p.yaml", data, tmp_path / "model",
                          {"checkpoint": {"steps": 2}, "logging": {"log_steps": 2}})
    done = run_py(["CPU", "-p", str(params), "-m", "train", "--max_steps", "4"], cwd=tmp_path)
    assert done.returncode == 0 and "(cstorch backend)" in done.stdout, done.stderr[-2000:]
    newest = tmp_path / "model" / "checkpoint_4.mdl"
    assert (tmp_path / "model" / "checkpoint_4.mdl.xxh128").read_text().split()[1] == newest.name
    data_bytes = bytearray(newest.read_bytes())
    data_bytes[len(data_bytes) // 2] ^= 0xFF
    newest.write_bytes(bytes(data_bytes))
    done = run_py(["CPU", "-p", str(params), "-m", "eval"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "falling back to the previous checkpoint" in done.stdout
    assert (tmp_path / "model" / "eval" / "metrics_step_2.json").is_file()

    files, marker = crafted_checkpoints(tmp_path)
    for path in files:
        done = run_py(["CPU", "-p", str(params), "-m", "eval", "--checkpoint_path", str(path)], cwd=tmp_path)
        assert done.returncode == 1 and done.stderr.startswith(f"error: {path}: "), done.stderr[-2000:]
        assert not marker.exists()
