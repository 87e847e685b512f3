"""The demo's training runs, each a params file derived from the shipped tiny params.

Pre-training: (i) DNA + epigenome = params/ebert_tiny.yaml itself (with the default output folder
nothing changes: `python run.py CPU` is that run), (ii) DNA only (no state/signal embeddings, the
loaders' use_* off). Fine-tuning (params/ebert_finetune_tiny.yaml), each variant once per seed of
SEEDS: (a) DNA + epigenome + known-motif tracks with the head's linear term, from (i) (the params
file as shipped), (a1) the same without motif tracks, (a0) the paper's k-mer EBERT (no motif
tracks, no linear term), (b) DNA only from (ii) (no linear term: nothing per bin to read), (c)
epigenome only (every DNA token [N]) from (i), as (a1), (e) as (a) from scratch. Every variant
samples bound windows as the shipped params do (bound_repeats). The variants with the linear term
((a), (a1), (c), (e)) train for the shipped params' steps, (a0) and (b) for
COMPARISON_FINETUNE_STEPS (schedule scaled), which keeps the demo within its budget. ``--quick``
shortens every run (same peak learning rates, schedules scaled) and trains two seeds per variant.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from ebert_modelzoo.config.base import read_yaml
from ebert_modelzoo.config.params import apply_overrides

REPO_ROOT = Path(__file__).resolve().parents[2]
PRETRAIN_PARAMS = REPO_ROOT / "params" / "ebert_tiny.yaml"
FINETUNE_PARAMS = REPO_ROOT / "params" / "ebert_finetune_tiny.yaml"
QUICK_PRETRAIN_STEPS = 40
QUICK_FINETUNE_STEPS = 60
LOADERS = ("fit.train_dataloader", "fit.val_dataloader", "validate.val_dataloader", "validate_all.val_dataloaders")


@dataclass(frozen=True)
class Run:
    """One training run of the demo."""

    name: str
    """Folder under runs/ and params/ (e.g. pretrain_dna_epigenome)."""
    title: str
    """Variant name in the report."""
    stage: str
    """"pre-training" or "fine-tuning"."""
    params: dict[str, Any]
    """Trainer-form params, ready to write."""
    upstream: Optional[str] = None
    """The run whose checkpoint this one starts from."""
    description: str = ""
    seed: Optional[int] = None
    """Training seed of a fine-tuning run (its variant is ``title``)."""

    @property
    def max_steps(self) -> int:
        return int(self.params["trainer"]["init"]["loop"]["max_steps"])


def _split_dir(value: str, data_root: Path) -> str:
    """``./demo_output/data/<kind>/<split>`` -> ``<data_root>/<kind>/<split>``."""
    parts = Path(value).parts
    return str(data_root.joinpath(*parts[-2:]))


def _schedule(peak: float, steps: int) -> list[dict[str, Any]]:
    """Linear warmup over 10% of ``steps`` to ``peak``, then linear decay to 0."""
    warmup = max(1, steps // 10)
    return [{"SequentialLR": {"schedulers": [
        {"LinearLR": {"initial_learning_rate": 0.0, "end_learning_rate": peak, "total_iters": warmup}},
        {"LinearLR": {"initial_learning_rate": peak, "end_learning_rate": 0.0, "total_iters": steps - warmup}},
    ]}}]


def peak_learning_rate(params: dict[str, Any]) -> float:
    """The peak of a params file's warmup + decay schedule."""
    return float(params["trainer"]["init"]["schedulers"][0]["SequentialLR"]["schedulers"][0]["LinearLR"]["end_learning_rate"])


def _derive(base: dict[str, Any], output_dir: Path, run: str, steps: Optional[int],
            loader_keys: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the run's folders under ``output_dir``, optionally ``steps`` steps, and
    ``loader_keys`` set in every dataloader section."""
    trainer = base["trainer"]
    overrides: dict[str, Any] = {"trainer.init.model_dir": str(output_dir / "runs" / run)}
    for section in LOADERS:
        group, key = section.split(".")
        loader = trainer.get(group, {}).get(key)
        if loader is None:
            continue
        overrides[f"trainer.{section}.data_dir"] = _split_dir(loader["data_dir"], output_dir / "data")
        if loader.get("motif_file") and not Path(loader["motif_file"]).is_absolute():
            overrides[f"trainer.{section}.motif_file"] = str(REPO_ROOT / loader["motif_file"])
        for name, value in loader_keys.items():
            overrides[f"trainer.{section}.{name}"] = value
    if steps is not None:
        overrides["trainer.init.loop.max_steps"] = steps
        overrides["trainer.init.loop.eval_frequency"] = steps
        overrides["trainer.init.checkpoint.steps"] = steps
        overrides["trainer.init.schedulers"] = _schedule(peak_learning_rate(base), steps)
    return apply_overrides(base, {**overrides, **extra})


COMPARISON_FINETUNE_STEPS = 600
"""Fine-tuning steps of the variants without the linear term ((a0), (b)): half of the shipped
params' 1,200, so the demo stays within its 12-minute budget."""
FULL_STEP_VARIANTS = ("finetune_motifs", "finetune_linear", "finetune_epigenome_only", "finetune_scratch")
"""The variants trained for the shipped params' steps: (a), (a1), (c) and (e), those with the
linear term, so that the verdicts between them compare equal training."""
SEEDS = (1, 2, 3)
"""Training seeds of every fine-tuning variant (initial weights, dropout, data order)."""
QUICK_SEEDS = (1, 2)
MOTIF_INPUTS_OFF = ({"motif_file": None, "motif_window_bp": None, "motif_tracks": None},
                    {"trainer.init.model.num_motif_tracks": 0})
"""Loader and model keys that turn the known-motif tracks off (the k-mer-only EBERT)."""
LINEAR_TERM_OFF = {"trainer.init.model.head_linear_bins": 0}
"""Model key that removes the head's linear term over the central bins' inputs."""


def _seeded(params: dict[str, Any], run: str, seed: int, output_dir: Path) -> dict[str, Any]:
    """``params`` of variant ``run`` trained with ``seed`` (weights, dropout and data order), in its own folder."""
    return apply_overrides(params, {"trainer.init.seed": seed, "trainer.fit.train_dataloader.shuffle_seed": seed,
                                    "trainer.init.model_dir": str(output_dir / "runs" / f"{run}_seed{seed}")})


def plan_runs(output_dir: Path, quick: bool) -> list[Run]:
    """The runs, pre-training first, then every fine-tuning variant once per seed; params
    written under ``output_dir``."""
    pre_base, ft_base = read_yaml(PRETRAIN_PARAMS), read_yaml(FINETUNE_PARAMS)
    pre_steps = QUICK_PRETRAIN_STEPS if quick else None
    ft_steps = QUICK_FINETUNE_STEPS if quick else None
    no_epigenome_model = {"trainer.init.model.num_chromatin_states": 0, "trainer.init.model.num_signal_tracks": 0}
    no_epigenome_data = {"use_chromatin_states": False, "use_signal": False}
    no_motif_data, no_motif_model = MOTIF_INPUTS_OFF
    pre_i = _derive(pre_base, output_dir, "pretrain_dna_epigenome", pre_steps, {}, {})
    pre_ii = _derive(pre_base, output_dir, "pretrain_dna_only", pre_steps,
                     {**no_epigenome_data, "state_mask_rate": 0.0, "max_state_predictions": 0},
                     {**no_epigenome_model, "trainer.init.model.state_mlm_loss_weight": 0.0})
    last = int(pre_i["trainer"]["init"]["loop"]["max_steps"])

    def checkpoint(run: str) -> dict[str, Any]:
        return {"trainer.fit.ckpt_path": str(output_dir / "runs" / run / f"checkpoint_{last}.mdl")}

    runs = [
        Run("pretrain_dna_epigenome", "(i) DNA + epigenome", "pre-training", pre_i,
            description="MLM on DNA with ChromHMM states and signal tracks, plus the masked-state objective"),
        Run("pretrain_dna_only", "(ii) DNA only", "pre-training", pre_ii, description="MLM on DNA alone"),
    ]
    from_i = checkpoint("pretrain_dna_epigenome")
    variants = [
        ("finetune_motifs", "EBERT DNA + epigenome + motif tracks", {}, from_i, "pretrain_dna_epigenome",
         "(a) fine-tuned from pre-training (i): DNA, states, signal and known-motif tracks; the head adds a linear "
         "term over the central bins' inputs and motif x signal products"),
        ("finetune_linear", "EBERT DNA + epigenome, linear term", no_motif_data, {**no_motif_model, **from_i},
         "pretrain_dna_epigenome", "(a1) as (a) without the motif tracks"),
        ("finetune_dna_epigenome", "EBERT DNA + epigenome", no_motif_data,
         {**no_motif_model, **LINEAR_TERM_OFF, **from_i}, "pretrain_dna_epigenome",
         "(a0) as (a1) without the linear term: the paper's EBERT, motifs only from the 4-mer tokens"),
        ("finetune_dna_only", "EBERT DNA only", {**no_epigenome_data, **no_motif_data},
         {**no_epigenome_model, **no_motif_model, **LINEAR_TERM_OFF, **checkpoint("pretrain_dna_only")},
         "pretrain_dna_only", "(b) fine-tuned from pre-training (ii), 4-mer tokens alone"),
        ("finetune_epigenome_only", "EBERT epigenome only", {"use_dna": False, **no_motif_data},
         {**no_motif_model, **from_i}, "pretrain_dna_epigenome",
         "(c) as (a1) with every DNA token replaced by [N]"),
        ("finetune_scratch", "EBERT DNA + epigenome + motif tracks, from scratch", {}, {"trainer.fit.ckpt_path": None},
         None, "(e) as (a) but from randomly initialised weights, same steps"),
    ]
    for name, title, loader_keys, extra, upstream, description in variants:
        steps = ft_steps if quick or name in FULL_STEP_VARIANTS else COMPARISON_FINETUNE_STEPS
        params = _derive(ft_base, output_dir, name, steps, loader_keys, extra)
        for seed in QUICK_SEEDS if quick else SEEDS:
            runs.append(Run(f"{name}_seed{seed}", title, "fine-tuning", _seeded(params, name, seed, output_dir),
                            upstream, description, seed))
    return runs


def params_text(run: Run) -> str:
    """The params file of ``run`` as written (a comment line, then YAML)."""
    header = (f"# Written by `python -m ebert_modelzoo.demo` for run {run.name} ({run.stage}): {run.description}.\n"
              f"# Derived from {'params/ebert_tiny.yaml' if run.stage == 'pre-training' else 'params/ebert_finetune_tiny.yaml'}.\n")
    return header + yaml.safe_dump(run.params, sort_keys=False)
