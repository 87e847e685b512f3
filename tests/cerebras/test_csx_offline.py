"""CSX without a cluster: ``--validate_only`` lowers one training step of every shipped params
file to Cerebras IR on this machine (on synthetic batches when the data is absent, on real
batches otherwise), and
``--compile_only`` or a run without a cluster address stops at once with what to do."""
from __future__ import annotations

import shutil

import pytest
import yaml

pytest.importorskip("cerebras.pytorch")
pytestmark = pytest.mark.cerebras

from ebert_modelzoo.cerebras.lowered_ir import lowered_ir  # noqa: E402
from ebert_modelzoo.cerebras.registry import modelzoo_installed  # noqa: E402
from tests.run_cases import PARAMS, cszoo, data_for, run_py, run_python, write_params  # noqa: E402


def validate_only(params, cwd, path=None, extra=()):
    """run.py CSX --validate_only: through Model Zoo's Trainer when Model Zoo is installed (the
    path Cerebras supports on clusters), else our cstorch loop; the log says which."""
    result = run_py(["CSX", "-p", str(params), "-m", "train", "--validate_only", *extra], cwd=cwd, path=path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Compile validated locally" in result.stdout + result.stderr
    runner = ("runner: Cerebras Model Zoo's Trainer" if modelzoo_installed()
              else "runner: ebert_modelzoo's trainer (cstorch backend on CSX)")
    assert runner in result.stdout
    return result


@pytest.mark.parametrize("params_file", sorted(path.name for path in PARAMS.glob("*.yaml")))
def test_validate_only_lowers_the_training_step_of_every_shipped_params_file_without_data(params_file, tmp_path):
    """A fresh clone: the params' data_dirs do not exist, so the batches are synthetic, shaped
    from the params, and the log says so."""
    model_dir = tmp_path / "model_dir"
    # motif_file (ebert_finetune_tiny) is named from the repository root: the same path under tmp_path
    motifs = tmp_path / "data_processing" / "demo_data" / "motifs.json"
    motifs.parent.mkdir(parents=True)
    shutil.copy(PARAMS.parent / "data_processing" / "demo_data" / "motifs.json", motifs)
    result = validate_only(PARAMS / params_file, tmp_path, extra=["-o", str(model_dir)])
    assert "trainer.fit.train_dataloader.data_dir" in result.stdout
    assert "--validate_only uses synthetic batches shaped from the params" in result.stdout
    if "ckpt_path" in (PARAMS / params_file).read_text():  # fine-tuning from a checkpoint not there
        assert "--validate_only lowers the step from freshly initialised weights" in result.stdout
    (cirh,) = lowered_ir(model_dir, 0.0)  # one executor: the training step
    text = cirh.read_text()
    # The lowered step holds the model's matmuls and the optimizer's update, not an empty module.
    assert "module" in text and text.count("\n") > 1000
    # Nothing ran, so there are no weights to save.
    assert not list(model_dir.glob("checkpoint_*.mdl"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return data_for("ebert_tiny.yaml", tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_params(tiny_data, tmp_path):
    return write_params("ebert_tiny.yaml", tmp_path / "tiny.yaml", tiny_data, tmp_path / "md")


def test_validate_only_works_with_the_venv_not_on_path(tiny_params, tmp_path):
    validate_only(tiny_params, tmp_path, path="/usr/bin:/bin")
    assert len(lowered_ir(tmp_path / "md", 0.0)) == 1


def test_cszoo_fit_validate_only_lowers_the_train_and_the_eval_step(tiny_params, tmp_path):
    """With Model Zoo installed `cszoo fit` is Model Zoo's Trainer (its artifacts go under
    cerebras_logs/<timestamp>/executors/), without it ours."""
    result = cszoo(["fit", tiny_params, "--target_device", "CSX", "--validate_only"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lowered = [path for path in (tmp_path / "md").glob("cerebras_logs/**/executors/*/cirh.mlir")
               if path.parent.name != "latest"]
    assert len(lowered) == 2
    assert "Compile validated locally" in result.stdout + result.stderr
    # The eval step was lowered, not run: no metrics (they would be NaN).
    assert not list((tmp_path / "md").glob("**/metrics_step_*.json"))
    if not modelzoo_installed():
        assert "eval step lowered, not run: no metrics" in result.stdout


@pytest.mark.parametrize("flags", [["--compile_only"], []], ids=["compile_only", "run"])
def test_csx_without_a_cluster_fails_fast_with_what_to_do(tiny_params, flags, tmp_path, monkeypatch):
    # No user-node cluster config either (cstorch would read the address from it).
    monkeypatch.setenv("CSCONFIG_PATH", str(tmp_path / "no_csconfig"))
    result = run_py(["CSX", "-p", str(tiny_params), "-m", "train", *flags], cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert "needs a Cerebras Wafer-Scale Cluster" in line
    assert "--mgmt_address HOST:PORT" in line and "--credentials_path" in line and "--validate_only" in line
    assert not (tmp_path / "md" / "cerebras_logs").exists()


def test_a_malformed_cluster_address_is_one_line(tiny_params, tmp_path):
    result = run_py(["CSX", "-p", str(tiny_params), "-m", "train", "--mgmt_address", "no-port"],
                    cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "mgmt_address 'no-port' should be in the form of '<name>:<port>'" in result.stderr


@pytest.mark.skipif(not modelzoo_installed(), reason="the refusal is on Model Zoo's Trainer's path")
def test_strand_average_is_refused_where_model_zoos_trainer_would_score_one_strand(tmp_path):
    data = data_for("ebert_finetune_tiny.yaml", tmp_path / "data")
    params = write_params("ebert_finetune_tiny.yaml", tmp_path / "p.yaml", data, tmp_path / "md")
    raw = yaml.safe_load(params.read_text())
    raw["trainer"]["fit"]["val_dataloader"]["strand_average"] = True
    params.write_text(yaml.safe_dump(raw))
    for run in (lambda: run_py(["CSX", "-p", str(params), "-m", "train_and_eval", "--validate_only"], cwd=tmp_path,
                               timeout=120),
                lambda: cszoo(["fit", str(params), "--target_device", "CPU"], cwd=tmp_path)):  # Model Zoo's cszoo
        result = run()
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
        (line,) = [l for l in result.stderr.splitlines() if l.startswith("error:")]
        assert "trainer.fit.val_dataloader.strand_average" in line and "Model Zoo's Trainer scores one strand" in line
        assert not (tmp_path / "md").exists()  # refused before anything ran


def stem_params(tmp_path):
    data = data_for("ebert_finetune_tiny.yaml", tmp_path / "data")
    params = write_params("ebert_finetune_tiny.yaml", tmp_path / "p.yaml", data, tmp_path / "md")
    raw = yaml.safe_load(params.read_text())
    raw["trainer"]["init"]["model"].update(dna_conv_filters=16, dna_conv_width=15)
    params.write_text(yaml.safe_dump(raw))
    return params


def test_validate_only_lowers_the_nucleotide_convolution_stem(tmp_path):
    params = stem_params(tmp_path)
    validate_only(params, tmp_path)
    (cirh,) = lowered_ir(tmp_path / "md", 0.0)
    assert cirh.read_text().count("\n") > 1000  # Cerebras IR, not the empty file an nn.Conv1d left


# run.py with the stem computed by torch's conv1d, which Cerebras lowers to an empty cirh.mlir
# while its log still says "Compile validated locally".
CONV1D_STEM = """
import sys
import torch.nn.functional as F
from ebert_modelzoo.models import dna_stem


def forward(self, input_ids):
    batch, length = input_ids.shape
    bases = F.embedding(input_ids.long(), self.bases).reshape(batch, length * self.k, 4).transpose(1, 2)
    weight = self.conv.weight.view(-1, self.width, 4).transpose(1, 2)
    filtered = F.relu(F.conv1d(bases, weight, self.conv.bias, padding=self.width // 2))
    return self.projection(filtered.reshape(batch, -1, length, self.k).amax(-1).transpose(1, 2))


dna_stem.BaseConvStem.forward = forward
from ebert_modelzoo.cli.{cli} import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("cli, args", [("run", ["CSX", "-p", "{params}", "-m", "train", "--validate_only"]),
                                       ("cszoo", ["fit", "{params}", "--target_device", "CSX", "--validate_only"])])
def test_validate_only_fails_when_a_step_lowers_to_no_cerebras_ir(cli, args, tmp_path):
    """run.py and `cszoo` (with Model Zoo installed: Model Zoo's own run) read the IR files."""
    params = stem_params(tmp_path)
    script = CONV1D_STEM.replace("{cli}", cli)
    result = run_python(["-c", script, *(a.format(params=params) for a in args)], cwd=tmp_path)
    assert "Compile validated locally" in result.stdout + result.stderr  # what Cerebras' tools claim
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    (line,) = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert "cirh.mlir is empty: the step did not lower to Cerebras IR" in line
