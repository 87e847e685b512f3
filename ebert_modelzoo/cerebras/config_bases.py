"""The classes our config sections derive from: Cerebras Model Zoo's own when it is installed,
plain pydantic otherwise. Chosen once, when this module is imported; the schema is the same.

Model Zoo builds a model's (a data processor's) config class from the annotation of its
``__init__(self, config)`` and folds the flat YAML keys under ``trainer.init.model`` (a dataloader
section) into that class only when it subclasses its ``BaseConfig``; its ``ModelConfig`` and
``DataConfig`` add the ``name`` / ``data_processor`` discriminators. So with Model Zoo present,
our model configs are ``ModelConfig``s, our dataloader configs ``DataConfig``s and every other
section a ``BaseConfig``, and Model Zoo's validator, CLI and Trainer read our params files.
"""
from __future__ import annotations

from ebert_modelzoo.cerebras.registry import modelzoo_installed

MODELZOO_BASES: bool = modelzoo_installed()
"""True when the sections below are Model Zoo's classes."""

if MODELZOO_BASES:
    from cerebras.modelzoo.config import BaseConfig as SectionBase
    from cerebras.modelzoo.config import DataConfig as DataSectionBase
    from cerebras.modelzoo.config import ModelConfig as ModelSectionBase
else:
    from pydantic import BaseModel as SectionBase

    DataSectionBase = ModelSectionBase = SectionBase

__all__ = ["MODELZOO_BASES", "DataSectionBase", "ModelSectionBase", "SectionBase"]
