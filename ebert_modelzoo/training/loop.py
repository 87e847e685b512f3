"""The trainer: build model/optimizer/schedulers from the params, train with periodic
evaluation and checkpoints, resume, evaluate one or every checkpoint.

Linear on purpose: ``Trainer.fit`` is the training loop, ``Trainer.validate`` one evaluation,
``Trainer.validate_all`` every checkpoint in step order. The device-specific parts go through
the backend (training/backends/base.py); the step functions are in training/step.py.
"""
from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from ebert_modelzoo.config.base import updated
from ebert_modelzoo.config.params import Params, parse_checkpoint_states
from ebert_modelzoo.errors import CheckpointError, ParamsError
from ebert_modelzoo.training import optimizer_state
from ebert_modelzoo.training.backends.base import Backend, Batch
from ebert_modelzoo.training.checkpoint import (
    CHECKSUM_SUFFIX,
    FORMAT_VERSION,
    capture_rng,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_model_weights,
    prune_checkpoints,
    read_verified,
    restore_rng,
)
from ebert_modelzoo.training.label_weights import resolve_positive_weight
from ebert_modelzoo.training.optim import param_groups
from ebert_modelzoo.training.reporting import RunReporter
from ebert_modelzoo.training.step import make_eval_step, make_train_step
from ebert_modelzoo.training.tasks import DataSource, Task

LOGGER = logging.getLogger("ebert_modelzoo")


def _check_finite(weights: dict[str, torch.Tensor], step: int, model_dir: Path) -> None:
    """Raise FloatingPointError naming a few NaN/infinite weights, and the checkpoint that stays
    the newest, instead of saving them."""
    bad = [name for name, tensor in weights.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        kept = latest_checkpoint(model_dir)
        raise FloatingPointError(
            f"step {step}: weights are NaN or infinite ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); "
            f"not saved, the newest checkpoint stays {kept or 'none'}; lower the learning rate or enable loss scaling")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (initial weights, dropout)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class LoadSettings:
    """Which checkpoint a run starts from, and what it takes from it."""

    checkpoint_path: Optional[Path] = None
    """Explicit checkpoint (--checkpoint_path); wins over everything."""
    states: Optional[str] = None
    """Comma-separated states (None = the params' LoadCheckpointStates callback)."""
    initial_path: Optional[Path] = None
    """Starting point when model_dir holds no checkpoint yet (the params' ckpt_path, e.g. a
    pre-training checkpoint to fine-tune from); a run that stopped resumes from model_dir."""


class Trainer:
    """One run: model, optimizer and schedulers on a backend, plus where its files go."""

    def __init__(self, params: Params, backend: Backend, source: str | Path, model_dir: Path) -> None:
        params = resolve_positive_weight(params, source)
        self.params = params
        self.init = params.trainer.init
        self.backend = backend
        self.source = str(source)
        self.model_dir = model_dir
        seed_everything(self.init.seed)
        self.task = Task(self.init.model)
        self.raw_model = self.task.build_model()
        self.model = backend.setup_model(self.raw_model)
        adamw = self.init.optimizer.AdamW
        self.optimizer = backend.make_optimizer(param_groups(self.raw_model, adamw.weight_decay), adamw)
        self.schedulers = backend.make_schedulers(self.optimizer, self.init)
        self.grad_scaler = backend.make_grad_scaler(self.init.precision)
        self.step = 0
        self.data_state: dict[str, Any] = {}
        """Position of the training data (the processor's loader state) after ``step`` steps."""
        # RNG state of a loaded checkpoint, applied just before the first step so that building
        # the data pipeline (which may draw from the global RNGs) cannot shift dropout.
        self._pending_rng: Optional[dict[str, Any]] = None

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs, as a plain dict of tensors and values."""
        return {
            "format_version": FORMAT_VERSION,
            "backend": self.backend.name,
            "step": self.step,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
            "grad_scaler": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
            "rng": capture_rng(),
            "data_state": dict(self.data_state),
            "params": self.params.to_dict(),
            "global_step": self.step,
            **({"dataloader": dict(self.data_state)} if self.data_state else {}),
        }

    def save(self) -> Path:
        """Write the checkpoint of the current step and its checksum file (main process), then
        prune old ones.

        Where the backend fetches weights from a device only at checkpoint steps, call this
        through ``backend.on_checkpoint`` at one of the steps announced to ``backend.batches``.

        Raises:
            FloatingPointError: a weight is NaN or infinite; nothing is written, the previous
                checkpoint stays the newest.
        """
        path = checkpoint_path(self.model_dir, self.step)
        if self.backend.is_main:
            state = self.state()
            if self.backend.runs_steps:
                _check_finite(state["model"], self.step, self.model_dir)
            self.backend.save_checkpoint(state, path)  # with its checksum file
            prune_checkpoints(self.model_dir, self.init.keep_last)
            LOGGER.info("saved checkpoint %s", path)
        self.backend.barrier()
        return path

    def read(self, path: Path) -> dict[str, Any]:
        """The checkpoint at ``path``, checked against its checksum file first.

        Raises:
            CheckpointError: corrupt, empty or unreadable (one line naming the file).
        """
        state, verified = read_verified(path, self.backend.load_checkpoint)
        if not verified:
            LOGGER.info("%s: no %s file beside it: read without a checksum check", path, CHECKSUM_SUFFIX)
        return state

    def load(self, path: Path, states: Optional[tuple[str, ...]], strict: bool,
             state: Optional[dict[str, Any]] = None) -> None:
        """Load the selected ``states`` of the checkpoint at ``path`` (``state``: its content,
        if read already).

        ``states`` None means the params' LoadCheckpointStates callback, except for a
        checkpoint of another model (a pre-training checkpoint loaded to fine-tune), of which
        only the weights can apply.
        """
        state = self.read(path) if state is None else state
        if states is None:
            states = parse_checkpoint_states(self.init.load_checkpoint_states)
            other = ((state.get("params") or {}).get("trainer", {}).get("init", {}).get("model", {}).get("name"))
            if other is not None and other != self.init.model.name:
                LOGGER.info("%s is a %r checkpoint: loading its weights only into %r",
                            path, other, self.init.model.name)
                states = ("model",)
        missing, unexpected = load_model_weights(self.raw_model, state["model"], strict, path) if "model" in states else ([], [])
        if missing or unexpected:
            LOGGER.info("loaded %s non-strictly: %d weights newly initialised, %d checkpoint weights unused",
                        path, len(missing), len(unexpected))
        state = self._from_other_backend(path, state, states)
        try:
            if "optimizer" in states and "optimizer" in state:
                self.optimizer.load_state_dict(state["optimizer"])
            if "schedulers" in states and state.get("schedulers"):
                for scheduler, scheduler_state in zip(self.schedulers, state["schedulers"]):
                    self.backend.load_scheduler_state(scheduler, scheduler_state)
            if "grad_scaler" in states and self.grad_scaler is not None and state.get("grad_scaler"):
                self.grad_scaler.load_state_dict(state["grad_scaler"])
        except (ValueError, KeyError, RuntimeError) as err:
            raise CheckpointError(
                f"{path}: optimizer/scheduler state does not fit this run ({str(err).splitlines()[0]}); "
                "load only the weights with --load_checkpoint_states model"
            ) from None
        if "step" in states:
            self.step = int(state.get("step", 0))
        if "dataloader" in states and "data_state" in state:
            self.data_state = dict(state["data_state"])
        if "rng" in states and "rng" in state:
            self._pending_rng = state["rng"]
        LOGGER.info("loaded %s (checkpoint of step %d; states: %s)", path, int(state.get("step", 0)), ",".join(states))

    def _from_other_backend(self, path: Path, state: dict[str, Any], states: tuple[str, ...]) -> dict[str, Any]:
        """``state`` with the optimizer, scheduler and grad-scaler states of a checkpoint written
        by the other backend put into this backend's layout (training/optimizer_state.py), for
        those of them in ``states``.

        Raises:
            CheckpointError: such a state does not fit this run.
        """
        written_by = state.get("backend")
        if written_by is None or written_by == self.backend.name:
            return state
        state = dict(state)
        if "optimizer" in states and state.get("optimizer") is not None:
            state["optimizer"] = optimizer_state.convert_optimizer(
                state["optimizer"], written_by, self.optimizer, self.backend.name, path, int(state.get("step", 0)))
        if "schedulers" in states and state.get("schedulers"):
            state["schedulers"] = optimizer_state.convert_schedulers(
                state["schedulers"], [s.state_dict() for s in self.schedulers], self.backend.name, path)
        if "grad_scaler" in states:
            state["grad_scaler"] = optimizer_state.convert_grad_scaler(
                state.get("grad_scaler"), self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
                self.backend.name, path)
        LOGGER.info("%s: a %s checkpoint, its states put into the %s backend's layout", path, written_by,
                    self.backend.name)
        return state

    def restore(self, settings: LoadSettings) -> None:
        """Load the explicit checkpoint, else the newest in model_dir (if the params'
        autoload_last_checkpoint allows it), else the initial checkpoint, else nothing."""
        ckpt = self.init.checkpoint
        try:
            states = parse_checkpoint_states(settings.states) if settings.states else None
        except ValueError as err:
            raise CheckpointError(f"--load_checkpoint_states: {err}") from None
        strict = not ckpt.disable_strict_checkpoint_loading
        if settings.checkpoint_path is None and ckpt.autoload_last_checkpoint:
            found = self.newest_valid_checkpoint()
            if found is not None:
                self.load(found[0], states, strict, found[1])
                return
        path = settings.checkpoint_path or settings.initial_path
        if path is not None:
            self.load(Path(path), states, strict)

    def newest_valid_checkpoint(self) -> Optional[tuple[Path, dict[str, Any]]]:
        """The newest checkpoint in model_dir that is intact (checksum, readable) and its
        content; a corrupt newer one is logged and passed over. None when model_dir has none.

        Raises:
            CheckpointError: every checkpoint in model_dir is corrupt (naming the newest).
        """
        found = [path for _, path in list_checkpoints(self.model_dir)]
        first_error: Optional[CheckpointError] = None
        for path in reversed(found):
            try:
                return path, self.read(path)
            except CheckpointError as err:
                first_error = first_error or err
                LOGGER.warning("%s; falling back to the previous checkpoint", err)
        if first_error is not None:
            raise CheckpointError(f"{first_error} (and no older checkpoint in {self.model_dir} is intact)")
        return None

    # ------------------------------------------------------------------ training

    def fit(self, num_steps: Optional[int] = None, evaluate_during: bool = False) -> None:
        """Train until ``loop.max_steps`` (or ``num_steps`` more), evaluating every eval_frequency
        steps when ``evaluate_during`` and checkpointing every checkpoint.steps and at the end."""
        fit = self.params.trainer.fit
        if fit is None:
            raise ParamsError(f"{self.source}: trainer.fit is missing: nothing to train on")
        loop, logging_cfg = self.init.loop, self.init.logging
        end = loop.max_steps if num_steps is None else min(loop.max_steps, self.step + num_steps)
        if self.step >= end:
            LOGGER.info("step %d already reached (max_steps %d): nothing to train", self.step, loop.max_steps)
            return
        loader_cfg = fit.train_dataloader
        source = self.data_source(loader_cfg, "trainer.fit.train_dataloader")
        if self.data_state:
            source.load_state_dict(self.data_state)
        reporter = RunReporter(self.model_dir, self.backend.is_main, loader_cfg.batch_size,
                               loader_cfg.max_sequence_length)
        train_step = make_train_step(self.backend, self.model, self.optimizer, self.schedulers,
                                     self.grad_scaler, self.init.precision)

        every = self.init.checkpoint.steps
        save_steps = {step for step in range(self.step + 1, end + 1) if (every and step % every == 0) or step == end}

        @self.backend.on_checkpoint
        def checkpoint() -> None:
            self.data_state = self.backend.data_position(source)
            self.save()

        @self.backend.on_host
        def report(step: int, loss: torch.Tensor, learning_rate: float) -> None:
            value = float(loss.detach().float().item())
            if not np.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {step}; lower the learning rate or "
                                         "enable loss scaling")
            reporter.train(step, value, learning_rate)

        LOGGER.info("training steps %d..%d on %s (%s backend)", self.step + 1, end,
                    self.init.backend.backend_type, self.backend.name)
        if self.init.checkpoint.save_initial_checkpoint and self.step == 0 and self.backend.runs_steps:
            self.data_state = source.state_dict()
            self.save()
        self.model.train()
        reporter.start(self.step, end)
        try:
            first = self.step
            for batch in self.backend.batches(source, end - first, checkpoint_steps=sorted(s - first for s in save_steps)):
                if self._pending_rng is not None:
                    restore_rng(self._pending_rng)
                    self._pending_rng = None
                learning_rate = float(self.optimizer.param_groups[0]["lr"])  # the one this step uses
                loss = train_step(batch)
                self.step += 1
                reporter.advance(self.step)
                if self.step % logging_cfg.log_steps == 0 or self.step == end:
                    report(self.step, loss, learning_rate)
                if self.step in save_steps:
                    checkpoint()
                if evaluate_during and loop.eval_frequency and self.step % loop.eval_frequency == 0 and self.step != end:
                    self._evaluate_and_report(reporter)
                    self.model.train()
            if evaluate_during:
                self._evaluate_and_report(reporter)
        finally:
            reporter.close()

    # ------------------------------------------------------------------ evaluation

    def _evaluate_and_report(self, reporter: RunReporter) -> dict[str, Any]:
        fit = self.params.trainer.fit
        if fit is None or fit.val_dataloader is None:
            raise ParamsError(f"{self.source}: train_and_eval needs trainer.fit.val_dataloader")
        # Evaluation must not move the training RNG streams (a resumed run skips it).
        rng = capture_rng()
        metrics = self.evaluate(fit.val_dataloader)
        restore_rng(rng)
        self._report_eval(reporter, metrics, "eval")
        return metrics

    def _report_eval(self, reporter: RunReporter, metrics: dict[str, Any], name: str) -> None:
        """Write the metrics, unless the backend only lowered the eval step (nothing computed,
        so every value would be a meaningless NaN)."""
        if self.backend.runs_steps:
            reporter.eval(self.step, metrics, name)
        else:
            LOGGER.info("%s step lowered, not run: no metrics for step %d", name, self.step)

    def data_source(self, loader_cfg: Any, loader_path: str) -> DataSource:
        """The processor of a dataloader section, checked against the model."""
        source = DataSource(loader_cfg)
        self.task.check_data(source, self.source, loader_path)
        return source

    def evaluate(self, loader_cfg: Any, eval_steps: Optional[int] = None,
                 loader_path: str = "trainer.fit.val_dataloader",
                 on_batch: Optional[Callable[[Any, Batch], None]] = None) -> dict[str, Any]:
        """Metrics of the current weights over ``eval_steps`` batches (default loop.eval_steps, or
        one pass over the data). Fine-tuning data with several cell types is also evaluated per
        cell type (ENCODE-DREAM scores each held-out cell type on its own). ``on_batch(outputs,
        batch)`` sees every batch of the main pass, in order (per-sample predictions)."""
        source = self.data_source(loader_cfg, loader_path)
        metrics = self._evaluate_source(source, eval_steps, on_batch)
        cell_types = loader_cfg.cell_types or list(source.processor.params.cell_types)
        if self.init.model.name == "ebert_finetune" and len(cell_types) > 1:
            metrics["per_cell_type"] = {
                cell: self._evaluate_source(
                    self.data_source(updated(loader_cfg, cell_types=[cell]), loader_path),
                    eval_steps)
                for cell in cell_types
            }
        return metrics

    def _evaluate_source(self, source: DataSource, eval_steps: Optional[int],
                         on_batch: Optional[Callable[[Any, Batch], None]] = None) -> dict[str, Any]:
        steps = eval_steps or self.init.loop.eval_steps or source.num_batches()
        metrics = self.task.make_metrics(source)
        eval_step = make_eval_step(self.backend, self.task.outputs_fn(self.model), self.init.precision)
        total = {"loss": 0.0, "batches": 0}
        self.model.eval()
        other = self._other_strand(source, steps, eval_step) if getattr(source.config, "strand_average", False) else None

        @self.backend.on_host
        def accumulate(outputs: Any, batch: Batch) -> None:
            if other is not None:
                logits, loss = other.popleft()
                outputs = replace(outputs, logits=(outputs.logits.float() + logits) / 2,
                                  loss=(outputs.loss.float() + loss) / 2)
            metrics.update(outputs, batch)
            if on_batch is not None:
                on_batch(outputs, batch)
            total["loss"] += float(outputs.loss.float().item())
            total["batches"] += 1

        for batch in self.backend.batches(source, steps, split=False):
            accumulate(eval_step(batch), batch)
        return {"loss": total["loss"] / max(total["batches"], 1), **metrics.compute()}

    def _other_strand(self, source: DataSource, steps: int, eval_step: Callable[[Batch], Any]) -> deque:
        """(logits, loss) of each of ``steps`` batches of ``source`` read from the other DNA strand,
        on the host, logits in forward bin order (strand_average)."""
        flipped = DataSource(updated(source.config, reverse_complement_prob=1.0, strand_average=False))
        found: deque = deque()

        @self.backend.on_host
        def keep(outputs: Any, batch: Batch) -> None:
            logits = outputs.logits.detach().float().cpu()
            found.append((logits.flip(1) if logits.ndim == 3 else logits, outputs.loss.detach().float().cpu()))

        for batch in self.backend.batches(flipped, steps, split=False):
            keep(eval_step(batch), batch)
        return found

    def validate(self, loader_cfg: Any, eval_steps: Optional[int] = None, name: str = "eval",
                 loader_path: str = "trainer.validate.val_dataloader") -> dict[str, Any]:
        """Evaluate the loaded weights and write the metrics of the current step under ``name``."""
        reporter = RunReporter(self.model_dir, self.backend.is_main, loader_cfg.batch_size,
                               loader_cfg.max_sequence_length)
        try:
            metrics = self.evaluate(loader_cfg, eval_steps, loader_path)
            self._report_eval(reporter, metrics, name)
        finally:
            reporter.close()
        return metrics

    def validate_all(self, loaders: list[tuple[str, Any]], paths: Optional[list[Path]],
                     eval_steps: Optional[int]) -> None:
        """Evaluate every checkpoint (``paths``, or all in model_dir in step order) on each of
        ``loaders`` ((dotted path, section) pairs)."""
        found = [Path(p) for p in paths] if paths else [path for _, path in list_checkpoints(self.model_dir)]
        if not found:
            raise FileNotFoundError(f"{self.model_dir}: no checkpoint_<step>.mdl to evaluate")
        corrupt: list[CheckpointError] = []
        for path in found:
            try:
                state = self.read(path)
            except CheckpointError as err:
                LOGGER.warning("%s; skipped", err)
                corrupt.append(err)
                continue
            self.load(path, ("model", "step"), strict=True, state=state)
            for i, (loader_path, loader_cfg) in enumerate(loaders):
                name = "eval" if len(loaders) == 1 else f"eval_{i}"
                self.validate(loader_cfg, eval_steps, name, loader_path)
        if corrupt:
            raise CheckpointError(f"{corrupt[0]} ({len(corrupt)} of {len(found)} checkpoints skipped, "
                                  "the others evaluated)")
