"""Either install order of Cerebras Model Zoo and this package leaves one `cszoo` that knows EBERT.

Each order is installed for real into a scratch venv layered on the Cerebras venv (a ``.pth``
line puts the Cerebras venv's site-packages after the scratch venv's own; ``.pth`` files of a
directory added that way are not run, so its editable installs of Model Zoo and of this package
are invisible there): ``pip install -e`` of Model Zoo's source tree and of this checkout, in one
order or the other, without dependencies (those come from the Cerebras venv). The console script
`cszoo` belongs to whichever was installed last; both list ``ebert`` and ``ebert_finetune``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("cerebras.pytorch")
pytestmark = pytest.mark.cerebras

from ebert_modelzoo.cerebras.registry import modelzoo_installed  # noqa: E402
from tests.run_cases import REPO  # noqa: E402

if not modelzoo_installed():
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but cerebras.modelzoo is not installed in the Cerebras venv")
    pytest.skip("Cerebras Model Zoo is not installed", allow_module_level=True)

import cerebras.modelzoo  # noqa: E402

MODELZOO_TREE = Path(cerebras.modelzoo.__file__).resolve().parents[3]  # <tree>/src/cerebras/modelzoo
PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--no-build-isolation", "-e"]


def clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}


def scratch_venv(folder: Path, trees: list[Path]) -> Path:
    """A venv over the Cerebras venv's site-packages with ``trees`` installed editable, in order."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_cerebras_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for tree in trees:
        result = subprocess.run([str(python), *PIP, str(tree)], capture_output=True, text=True, env=clean_env(),
                                timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    return folder


def models_listed(venv: Path) -> str:
    result = subprocess.run([str(venv / "bin" / "cszoo"), "model", "list"], capture_output=True, text=True,
                            env=clean_env(), cwd="/", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("order", ["modelzoo_then_ours", "ours_then_modelzoo"])
def test_either_install_order_leaves_a_cszoo_that_knows_ebert(order, tmp_path):
    trees = [MODELZOO_TREE, REPO] if order == "modelzoo_then_ours" else [REPO, MODELZOO_TREE]
    venv = scratch_venv(tmp_path / "venv", trees)
    script = (venv / "bin" / "cszoo").read_text()
    if order == "modelzoo_then_ours":
        assert "ebert_modelzoo.cli.cszoo" in script  # ours, which hands over to Model Zoo's CLI
    else:
        assert "cerebras-modelzoo" in script and "ebert_modelzoo" not in script  # Model Zoo's own
    listed = [line.strip("│ ") for line in models_listed(venv).splitlines()]
    assert "ebert" in listed and "ebert_finetune" in listed
    assert "bert" in listed  # Model Zoo's own models too

    # Control: without the package's .pth, Model Zoo's own cszoo does not know EBERT.
    if order == "ours_then_modelzoo":
        (hook,) = venv.glob("lib/python*/site-packages/ebert_modelzoo-modelzoo.pth")
        hook.unlink()
        listed = [line.strip("│ ") for line in models_listed(venv).splitlines()]
        assert "ebert" not in listed and "bert" in listed
