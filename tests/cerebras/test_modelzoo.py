"""The real Cerebras Model Zoo (Release 2.10.0, installed editable in the Cerebras venv by
tools/cerebras_venv.sh): its registry, config validator and command line accept EBERT.

Without Model Zoo in the venv these tests skip, except under CI=true, where they fail: CI must
test against the real thing."""
from __future__ import annotations

import os
import site
import sysconfig
import typing
from pathlib import Path

import pytest

pytest.importorskip("cerebras.pytorch")
pytestmark = pytest.mark.cerebras

from ebert_modelzoo.cerebras.registry import ENTRIES, modelzoo_installed  # noqa: E402
from tests.run_cases import PARAMS, cszoo, run_python  # noqa: E402

if not modelzoo_installed():
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but cerebras.modelzoo is not installed in the Cerebras venv "
                           "(tools/cerebras_venv.sh installs it from the vendored snapshot)")
    pytest.skip("Cerebras Model Zoo is not installed (set EBERT_MODELZOO_SRC for tools/cerebras_venv.sh)",
                allow_module_level=True)

import ebert_modelzoo  # noqa: E402,F401  (registers EBERT)
from cerebras.modelzoo.config import BaseConfig, DataConfig, ModelConfig  # noqa: E402
from cerebras.modelzoo.registry import registry  # noqa: E402
from cerebras.modelzoo.trainer.validate_configs import validate_config  # noqa: E402
from ebert_modelzoo.cerebras.registry import register_with_modelzoo  # noqa: E402
from ebert_modelzoo.config.params import load_params  # noqa: E402

SHIPPED = sorted(PARAMS.glob("*.yaml"))


def test_importing_the_package_registers_every_model_once():
    assert {"ebert", "ebert_finetune"} <= set(registry.get_model_names())
    for entry in ENTRIES:
        assert registry.get_model(entry.name).path == entry.modelzoo_path
        assert tuple(registry.get_model(entry.name).data_processor_paths) == entry.data_processor_paths
    assert register_with_modelzoo() == []  # a second call changes nothing


def test_config_sections_are_modelzoo_config_classes():
    """One schema, Model Zoo's bases: the model configs are ModelConfigs, dataloader sections
    DataConfigs, every other section a BaseConfig, so Model Zoo folds the flat keys into them."""
    params = load_params(PARAMS / "ebert_finetune_tiny.yaml")
    assert isinstance(params.trainer.init.model, ModelConfig)
    assert isinstance(params.trainer.fit.train_dataloader, DataConfig)
    assert isinstance(params.trainer.init.optimizer, BaseConfig) and isinstance(params, BaseConfig)
    for entry in ENTRIES:
        model_cls = registry.get_model_class(entry.name)
        assert issubclass(typing.get_type_hints(model_cls.__init__)["config"], ModelConfig)
        for processor in registry.get_data_processors(entry.name):
            assert issubclass(typing.get_type_hints(processor.__init__)["config"], DataConfig)


@pytest.mark.parametrize("params_file", SHIPPED, ids=[path.name for path in SHIPPED])
def test_modelzoo_validates_every_shipped_params_file(params_file):
    validate_config(str(params_file))  # raises on any error


def test_modelzoo_rejects_a_misspelled_model_key_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((PARAMS / "ebert_tiny.yaml").read_text().replace("      hidden_size:", "      hiden_size:"))
    with pytest.raises(Exception) as err:
        validate_config(str(bad))
    assert "init.model.config.hiden_size" in str(err.value)
    assert "Extra inputs are not permitted" in str(err.value)


def test_cszoo_config_validate_and_model_commands_know_ebert(tmp_path):
    """Model Zoo's own CLI (our `cszoo` registers EBERT and hands over to it)."""
    for params_file in (PARAMS / "ebert_tiny.yaml", PARAMS / "ebert_finetune_base.yaml"):
        result = cszoo(["config", "validate", params_file], cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    bad = tmp_path / "bad.yaml"
    bad.write_text((PARAMS / "ebert_tiny.yaml").read_text().replace("      hidden_size:", "      hiden_size:"))
    result = cszoo(["config", "validate", bad], cwd=tmp_path)
    assert result.returncode != 0 and "init.model.config.hiden_size" in result.stdout + result.stderr

    listed = cszoo(["model", "list"], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "ebert " in listed.stdout and "ebert_finetune" in listed.stdout
    described = cszoo(["model", "describe", "ebert"], cwd=tmp_path)
    assert described.returncode == 0, described.stderr[-3000:]
    assert "num_chromatin_states" in described.stdout and "tokens_per_bin" in described.stdout
    info = cszoo(["model", "info", "ebert_finetune"], cwd=tmp_path)
    assert info.returncode == 0, info.stderr[-3000:]
    assert "EBertFinetuningDataProcessor" in info.stdout


def test_modelzoo_own_cli_entry_point_knows_ebert_without_importing_this_package(tmp_path):
    """Both console scripts named `cszoo` (Model Zoo's `cerebras.modelzoo.cli.main:main` and
    ours), so either install order leaves one that knows EBERT: the package's .pth registers it
    in any process that imports Model Zoo's registry."""
    hooks = [path for folder in {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
             for path in Path(folder).glob("ebert_modelzoo-modelzoo.pth")]
    assert hooks, "ebert_modelzoo-modelzoo.pth is not installed (setup.py ships it)"
    code = ("import sys; sys.argv = ['cszoo', 'model', 'list']; "
            "from cerebras.modelzoo.cli.main import main; main()")
    result = run_python(["-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ebert " in result.stdout and "ebert_finetune" in result.stdout
