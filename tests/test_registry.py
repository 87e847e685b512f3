"""Model Zoo registration without Model Zoo: nothing happens (or is imported), and every
registered path resolves to the class it names, whose ``config`` annotation is the config class
Model Zoo builds the section from. With the real Model Zoo: tests/cerebras/test_modelzoo.py."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from ebert_modelzoo.cerebras.registry import ENTRIES, modelzoo_installed

REPO = Path(__file__).resolve().parents[1]

# The config section each registered class is built from: Model Zoo reads the model's config
# class from the annotation of its ``config`` argument and discriminates processors by class name.
EXPECTED_MODEL_CONFIG = {"ebert": "EBertPretrainConfig", "ebert_finetune": "EBertFinetuneConfig"}


def run_python(code: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    paths = [str(extra_path)] if extra_path else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths + [str(REPO)]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def import_path(path: str) -> type:
    module_name, class_name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)


def config_class(cls: type) -> type:
    """The config class a model/processor takes as ``config``: one class, not a Union (Model Zoo
    folds the YAML keys into it only then)."""
    annotation = typing.get_type_hints(cls.__init__)["config"]
    assert isinstance(annotation, type) and hasattr(annotation, "model_fields"), annotation
    return annotation


def test_without_modelzoo_import_registers_nothing_and_imports_no_cerebras_package():
    result = run_python("""
        import json, sys
        import ebert_modelzoo
        from ebert_modelzoo.cerebras.registry import modelzoo_installed, register_with_modelzoo
        print(json.dumps({"installed": modelzoo_installed(), "registered": register_with_modelzoo(),
                          "cerebras": sorted(m for m in sys.modules if m.split(".")[0] == "cerebras")}))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"installed": False, "registered": [], "cerebras": []}


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
def test_registered_model_path_resolves_to_its_model_class(entry):
    cls = import_path(entry.path)
    assert isinstance(cls, type) and cls.__name__ == entry.path.rsplit(".", 1)[1]
    config_cls = config_class(cls)
    assert config_cls.__name__ == EXPECTED_MODEL_CONFIG[entry.name]
    # The config's `name` discriminator accepts exactly the registered name.
    assert typing.get_args(config_cls.model_fields["name"].annotation) == (entry.name,)


@pytest.mark.parametrize(
    "processor_path",
    [path for entry in ENTRIES for path in entry.data_processor_paths],
)
def test_registered_data_processor_path_resolves_to_its_class(processor_path):
    cls = import_path(processor_path)
    assert isinstance(cls, type) and cls.__name__ == processor_path.rsplit(".", 1)[1]
    config_cls = config_class(cls)
    # Model Zoo picks a processor by class name, which is what `data_processor:` holds.
    assert typing.get_args(config_cls.model_fields["data_processor"].annotation) == (cls.__name__,)


def test_modelzoo_installed_is_false_in_this_environment():
    # The dev venv has no Cerebras packages at all (this file is not part of the Cerebras suite).
    assert modelzoo_installed() is False
