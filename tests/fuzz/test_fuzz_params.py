"""Fuzzing the params loader (trainer and legacy forms) and the preprocessing config loader:
whatever the YAML holds, they return a config or raise their one error type (ParamsError), whose
message run.py and the preprocessing CLIs print as one ``error:`` line."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from ebert_modelzoo.config.params import load_params
from ebert_modelzoo.errors import ParamsError
from ebert_modelzoo.preprocessing.config import load_config
from tests.config.test_params import LEGACY

from .strategies import mutated

REPO = Path(__file__).resolve().parents[2]
PARAMS = [yaml.safe_load((REPO / "params" / name).read_text()) for name in ("ebert_tiny.yaml", "ebert_finetune_tiny.yaml")]
CONFIGS = {kind: yaml.safe_load((REPO / "data_processing" / "configs" / f"demo_{kind}.yaml").read_text())
           for kind in ("pretraining", "finetuning")}


def write(path: Path, doc: object) -> Path:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def loads_cleanly(load, path: Path) -> None:
    try:
        load(path)
        event("loaded")
    except ParamsError:
        event("refused")


@given(doc=st.sampled_from(PARAMS).flatmap(mutated))
def test_trainer_form_params(tmp_path, doc):
    loads_cleanly(load_params, write(tmp_path / "p.yaml", doc))


@given(doc=mutated(LEGACY))
def test_legacy_form_params(tmp_path, doc):
    loads_cleanly(load_params, write(tmp_path / "p.yaml", doc))


@given(text=st.sampled_from(PARAMS + [LEGACY]).map(yaml.safe_dump), cut=st.integers(0, 10**6),
       noise=st.binary(max_size=8))
def test_params_bytes(tmp_path, text, cut, noise):
    """Raw bytes spliced into a valid file: broken YAML, bad encodings, truncation."""
    raw = text.encode()
    at = cut % (len(raw) + 1)
    (tmp_path / "p.yaml").write_bytes(raw[:at] + noise + raw[at + len(noise) // 2:])
    loads_cleanly(load_params, tmp_path / "p.yaml")


@given(kind_doc=st.sampled_from(sorted(CONFIGS)).flatmap(lambda k: st.tuples(st.just(k), mutated(CONFIGS[k]))))
def test_preprocessing_config(tmp_path, kind_doc):
    kind, doc = kind_doc
    loads_cleanly(lambda p: load_config(p, kind), write(tmp_path / "c.yaml", doc))


def test_the_unmutated_files_load(tmp_path):
    """The fuzzers start from valid documents (else they would only probe the first check)."""
    for doc in PARAMS + [copy.deepcopy(LEGACY)]:
        load_params(write(tmp_path / "p.yaml", doc))
    for kind, doc in CONFIGS.items():
        load_config(write(tmp_path / "c.yaml", doc), kind)
