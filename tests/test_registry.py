"""Model Zoo registration: nothing happens (or is imported) without Model Zoo, every registered
path resolves to the class it names, and the registration call carries the right arguments.

Real Model Zoo cannot be installed here (it is not on the package registry), so the call is
checked against a throwaway ``cerebras.modelzoo.registry`` (tests/fake_modelzoo.py).
"""
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
from tests.fake_modelzoo import RECORDING_REGISTRY, write_fake_registry

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
    """The pydantic config class a model/processor takes as ``config`` (a Union may add a dict)."""
    annotation = typing.get_type_hints(cls.__init__)["config"]
    options = typing.get_args(annotation) or (annotation,)
    (found,) = [option for option in options if hasattr(option, "model_fields")]
    return found


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


def test_import_registers_every_entry_with_modelzoo(tmp_path):
    root = write_fake_registry(tmp_path, RECORDING_REGISTRY)
    result = run_python("""
        import json
        import ebert_modelzoo
        import ebert_modelzoo.cerebras.registry as ours
        from cerebras.modelzoo.registry import registry
        again = ours.register_with_modelzoo()  # a second import-time call changes nothing
        print(json.dumps({"calls": registry.calls, "again": again,
                          "installed": ours.modelzoo_installed()}))
    """, extra_path=root)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["installed"] is True
    assert out["again"] == []
    assert out["calls"] == [
        {"name": e.name, "path": e.path, "data_processor_paths": list(e.data_processor_paths)}
        for e in ENTRIES
    ]
    assert [call["name"] for call in out["calls"]] == ["ebert", "ebert_finetune"]


def test_a_modelzoo_that_rejects_registration_does_not_break_the_import(tmp_path):
    root = write_fake_registry(tmp_path, """
        class _Registry:
            def get_model_names(self):
                return []

            def register_model(self, *, name, path, data_processor_paths):
                raise RuntimeError("registry file is read-only")

        registry = _Registry()
    """)
    result = run_python("""
        import warnings
        warnings.simplefilter("always")
        import ebert_modelzoo
        print("imported")
    """, extra_path=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
    assert "could not register with Cerebras Model Zoo: registry file is read-only" in result.stderr


def test_modelzoo_installed_is_false_in_this_environment():
    # The dev venv has no Cerebras packages at all; the Cerebras venv has cstorch but no Model Zoo.
    assert modelzoo_installed() is False
