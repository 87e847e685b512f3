"""Registration of EBERT's models and data processors into Cerebras Model Zoo's registry.

Model Zoo has no plugin discovery: a package registers itself when imported. Importing
``ebert_modelzoo`` calls :func:`register_with_modelzoo`, which does nothing (and imports no
Cerebras package) unless ``cerebras.modelzoo`` is installed.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class RegistryEntry:
    """One Model Zoo registry entry: ``path`` and each data processor path are ``module.Class``.
    ``modelzoo_path`` is what Model Zoo's registry gets: the same model reporting our eval metrics
    as cstorch ``Metric`` modules (cerebras/modelzoo_models.py; it imports cerebras.pytorch)."""

    name: str
    path: str
    data_processor_paths: tuple[str, ...]
    modelzoo_path: str


ENTRIES: tuple[RegistryEntry, ...] = (
    RegistryEntry(
        name="ebert",
        path="ebert_modelzoo.models.ebert.EBertForPreTrainingModel",
        data_processor_paths=("ebert_modelzoo.data.processors.EBertPretrainingDataProcessor",),
        modelzoo_path="ebert_modelzoo.cerebras.modelzoo_models.EBertForPreTrainingModel",
    ),
    RegistryEntry(
        name="ebert_finetune",
        path="ebert_modelzoo.models.ebert.EBertForFineTuningModel",
        data_processor_paths=("ebert_modelzoo.data.processors.EBertFinetuningDataProcessor",),
        modelzoo_path="ebert_modelzoo.cerebras.modelzoo_models.EBertForFineTuningModel",
    ),
)


def modelzoo_installed() -> bool:
    """True when ``cerebras.modelzoo`` can be imported; imports nothing of it to find out."""
    if importlib.util.find_spec("cerebras") is None:
        return False
    # ``cerebras`` is a namespace package (cerebras.pytorch, cerebras.appliance live in it);
    # finding a submodule's spec imports only that empty namespace.
    try:
        return importlib.util.find_spec("cerebras.modelzoo") is not None
    except (ImportError, ValueError):
        return False


def register_with_modelzoo() -> list[str]:
    """Add EBERT's entries to Model Zoo's registry, if Model Zoo is installed.

    Names Model Zoo already knows are left alone, so importing twice is harmless. Never raises:
    a Model Zoo whose registry cannot take the entries gets a warning, not a broken import.

    Returns:
        The names registered by this call.
    """
    if not modelzoo_installed():
        return []
    try:
        from cerebras.modelzoo.registry import registry

        known = set(registry.get_model_names())
        registered = []
        for entry in ENTRIES:
            if entry.name in known:
                continue
            registry.register_model(
                name=entry.name,
                path=entry.modelzoo_path,
                data_processor_paths=entry.data_processor_paths,
            )
            registered.append(entry.name)
        return registered
    except Exception as err:  # importing ebert_modelzoo must not fail because of Model Zoo
        warnings.warn(f"ebert_modelzoo: could not register with Cerebras Model Zoo: {err}")
        return []
