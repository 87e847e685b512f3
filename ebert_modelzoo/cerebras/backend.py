"""The cerebras.pytorch backend: the same step functions on cstorch's CPU, GPU and CSX devices.

cstorch's programming model: the model is ``cstorch.compile``d, the step is ``cstorch.trace``d
(on CSX it is traced once, lowered, compiled and run on the wafer), host-side reads of step
results happen in ``cstorch.step_closure``s, data flows through ``cstorch.utils.data.DataLoader``
(built from input_workers.input_fn, which CSX input workers import and call) and a
``DataExecutor`` that fixes the number of steps and the checkpoint steps, and checkpoints are
``cstorch.save`` files (HDF5) written in ``cstorch.checkpoint_closure``s, which run only at those
checkpoint steps, and read back by training/cstorch_format.py, never by ``cstorch.load`` (see
``load_checkpoint``).

CSX without a cluster: ``validate_only`` traces one step and lowers it locally to Cerebras IR
(``<model_dir>/cerebras_logs/executors/<n>/cirh.mlir``); it needs the venv's ``bin/`` on PATH
(``torch-cirh-opt``). ``compile_only`` and real runs need a management address; without one
this module raises :class:`ClusterAccessError` before anything runs.

It is imported only when ``cerebras.pytorch`` is installed.
"""
from __future__ import annotations

import os
import shutil
import sys
import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

import cerebras.pytorch as cstorch
from cerebras.appliance.cluster.config import ClusterConfigError
from cerebras.pytorch.backend import use_cs
from ebert_modelzoo.cerebras.input_workers import input_fn, worker_config
from ebert_modelzoo.config.params import AdamWConfig, InitConfig, PrecisionConfig
from ebert_modelzoo.errors import ClusterAccessError
from ebert_modelzoo.training.backends.base import Batch, BackendOptions, DataFeed, F
from ebert_modelzoo.training.checkpoint import checkpoint_file, read_checkpoint
from ebert_modelzoo.training.schedules import schedule_phases

# Where a Cerebras user node keeps the cluster's address and certificates (cstorch's default).
DEFAULT_CSCONFIG = Path("/opt/cerebras/config_v2")


def _csconfig_path() -> Path:
    return Path(os.environ.get("CSCONFIG_PATH") or DEFAULT_CSCONFIG)


def check_cluster_access(options: BackendOptions) -> None:
    """Fail fast, with what to do, when a CSX compile or run has no cluster to talk to.

    Raises:
        ClusterAccessError: neither ``--mgmt_address`` nor a user-node cluster config is present.
        FileNotFoundError: ``--credentials_path`` names a missing file.
    """
    if options.credentials_path and not Path(options.credentials_path).is_file():
        raise FileNotFoundError(f"--credentials_path {options.credentials_path}: file not found")
    if options.mgmt_address or _csconfig_path().is_file():
        return
    mode = "--compile_only" if options.compile_only else "a CSX run"
    raise ClusterAccessError(
        f"{mode} needs a Cerebras Wafer-Scale Cluster, and none is configured: pass "
        f"--mgmt_address HOST:PORT (with --credentials_path CERT for a TLS cluster), or run on a "
        f"cluster user node (which has {_csconfig_path()}); to check the model offline use "
        f"--validate_only"
    )


def check_csx_options(options: BackendOptions) -> None:
    """What a CSX run (ours or Model Zoo's Trainer) checks before it starts: consistent flags, a
    cluster to talk to (except --validate_only), the lowering tool.

    Raises:
        ValueError: contradictory flags, or more than one CS system.
        ClusterAccessError: no cluster configured for a compile or a run.
    """
    if options.compile_only and options.validate_only:
        raise ValueError("--compile_only and --validate_only are mutually exclusive")
    runs = not (options.compile_only or options.validate_only)
    if runs and options.num_csx > 1:
        # Each system's input worker must stream its own share of the global batch
        # (cstorch.distributed.get_streaming_batch_size); the loaders yield whole batches.
        raise ValueError(f"--num_csx {options.num_csx}: training on more than one CS system is not "
                         f"supported yet (the input function streams whole global batches); use --num_csx 1")
    if not options.validate_only:
        check_cluster_access(options)
    _find_lowering_tool()


def _find_lowering_tool() -> None:
    """cstorch lowers CSX steps by running ``torch-cirh-opt`` from PATH; it lives next to this
    interpreter, so a venv used without activating it gets its bin/ put on PATH."""
    if shutil.which("torch-cirh-opt") is not None:
        return
    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "torch-cirh-opt").is_file():
        raise FileNotFoundError(
            f"torch-cirh-opt not found on PATH nor in {venv_bin}: run CSX from the Cerebras venv "
            f"(tools/cerebras_venv.sh run python run.py CSX ...)"
        )
    os.environ["PATH"] = os.pathsep.join([str(venv_bin), os.environ.get("PATH", "")])


def _cluster_error(err: Exception) -> ClusterAccessError:
    return ClusterAccessError(
        f"cannot reach the Cerebras cluster ({err}); check --mgmt_address and --credentials_path, "
        f"or use --validate_only to check the model offline"
    )


class CstorchBackend:
    """cerebras.pytorch on CPU, GPU or CSX (one process; cstorch spreads CSX work itself)."""

    name = "cstorch"
    is_main = True
    rank = 0
    world_size = 1

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        artifact_dir = str(Path(options.model_dir) / "cerebras_logs")
        if options.target == "CSX":
            check_csx_options(options)
            cluster = cstorch.distributed.ClusterConfig(
                mgmt_address=options.mgmt_address,
                credentials_path=options.credentials_path,
                num_csx=options.num_csx,
                mount_dirs=list(options.mount_dirs),
                python_paths=list(options.python_paths),
                job_labels=list(options.job_labels),
            )
            kwargs: dict[str, Any] = {}
            if options.compile_dir:
                kwargs["compile_dir"] = options.compile_dir
            self._backend = cstorch.backend(
                "CSX", artifact_dir=artifact_dir, compile_only=options.compile_only,
                validate_only=options.validate_only, cluster_config=cluster, **kwargs,
            )
        elif options.target == "GPU":
            self._backend = cstorch.backend("GPU", artifact_dir=artifact_dir)
        elif options.target == "CPU":
            self._backend = cstorch.backend("CPU", artifact_dir=artifact_dir)
        else:
            raise ValueError(f"unknown target {options.target!r}; choose CPU, GPU or CSX")
        self.device = self._backend.torch_device
        self._precision: Optional[PrecisionConfig] = None
        self._loaders: dict[int, Any] = {}
        """The cstorch DataLoader of each source being iterated (by id), for data_position."""

    @property
    def runs_steps(self) -> bool:
        """False for CSX compile_only/validate_only: one step is traced, nothing is computed,
        no step closure runs and there are no weights to save."""
        return self._backend.is_e2e_execution

    # ------------------------------------------------------------------ model and optimizer

    def setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return cstorch.compile(model, self._backend)

    def make_optimizer(self, param_groups: list[dict[str, Any]], config: AdamWConfig) -> torch.optim.Optimizer:
        return cstorch.optim.AdamW(
            param_groups,
            lr=config.learning_rate if config.learning_rate is not None else 0.0,
            betas=tuple(config.betas),
            eps=config.eps,
            weight_decay=config.weight_decay,
            correct_bias=config.correct_bias,
        )

    def make_schedulers(self, optimizer: torch.optim.Optimizer, init: InitConfig) -> list[Any]:
        phases = schedule_phases(init)
        if phases is None:
            return []
        lr = cstorch.optim.lr_scheduler
        linear = [
            lr.LinearLR(optimizer, initial_learning_rate=p.initial_learning_rate,
                        end_learning_rate=p.end_learning_rate, total_iters=p.total_iters)
            for p in phases
        ]
        if len(linear) == 1:
            return linear
        milestones, start = [], 0
        for phase in phases[:-1]:
            start += phase.total_iters
            milestones.append(start)
        return [lr.SequentialLR(optimizer, schedulers=linear, milestones=milestones)]

    def load_scheduler_state(self, scheduler: Any, state: dict[str, Any]) -> None:
        """cstorch's scheduler restores its position only; off CSX it writes the rate into the
        optimizer's groups when it steps, so without this the first resumed step of a run that
        kept its schedule but not its optimizer state would use the fresh optimizer's rate (0 in
        a warmup). On CSX the rate is computed on the device from the position."""
        scheduler.load_state_dict(state)
        if not use_cs():
            scheduler.update_last_value()

    # ------------------------------------------------------------------ precision

    def _configure_precision(self, precision: PrecisionConfig) -> None:
        """Set cstorch's half type once, before the step is traced (CSX casts by itself)."""
        if self._precision is not None:
            if precision != self._precision:
                raise ValueError("precision settings changed during the run")
            return
        self._precision = precision
        if precision.enabled:
            cstorch.amp.set_half_dtype(self._half_type(precision))
        if not (precision.enabled and self._half_type(precision) == "float16"):
            # cstorch warns about a missing float16 grad scaler even when float16 is not used.
            warnings.filterwarnings("ignore", message="Detected that the half dtype is set to float16")

    def _half_type(self, precision: PrecisionConfig) -> str:
        # cbfloat16 exists only on the wafer; CPU autocast takes only bfloat16.
        if self._backend.is_csx:
            return precision.fp16_type
        if self._backend.is_cpu or precision.fp16_type == "cbfloat16":
            return "bfloat16"
        return precision.fp16_type

    def make_grad_scaler(self, precision: PrecisionConfig) -> Any:
        self._configure_precision(precision)
        if not precision.enabled or precision.loss_scaling_factor == 1.0:
            return None
        return cstorch.amp.GradScaler(loss_scale=precision.loss_scaling_factor)

    def autocast(self, precision: PrecisionConfig) -> AbstractContextManager:
        self._configure_precision(precision)
        if not precision.enabled:
            return nullcontext()
        return cstorch.amp.autocast()

    # ------------------------------------------------------------------ steps and data

    def reduce_gradients(self, model: torch.nn.Module) -> None:
        """One process: nothing to average."""

    def wrap_train_step(self, fn: F) -> F:
        return cstorch.trace(fn)

    def wrap_eval_step(self, fn: F) -> F:
        return cstorch.trace(fn)

    def on_host(self, fn: F) -> F:
        return cstorch.step_closure(fn)

    def batches(self, source: DataFeed, num_steps: int, split: bool = True,
                checkpoint_steps: Sequence[int] = ()) -> Iterator[Batch]:
        """``num_steps`` batches through a DataExecutor (one batch on CSX compile/validate-only)
        whose checkpoint schedule holds ``checkpoint_steps``. One process feeds every batch
        whole, so ``split`` changes nothing here."""
        loader = cstorch.utils.data.DataLoader(input_fn, worker_config(source.config), source.state_dict())
        schedule = cstorch.utils.data.Schedule(
            [cstorch.utils.data.Schedule.Range(start=step - 1, end=step, step=1, include_last=False)
             for step in sorted(set(checkpoint_steps))])
        executor = cstorch.utils.data.DataExecutor(loader, num_steps=num_steps, checkpoint_steps=schedule)
        self._loaders[id(source)] = loader
        try:
            yield from executor
        except ClusterConfigError as err:
            raise _cluster_error(err) from None
        finally:
            del self._loaders[id(source)]

    def on_checkpoint(self, fn: F) -> F:
        return cstorch.checkpoint_closure(fn)

    def data_position(self, source: DataFeed) -> dict[str, int]:
        """The cstorch DataLoader's state: the local loader's on CPU/GPU, the input workers'
        on CSX (cstorch refuses it outside checkpoint steps)."""
        return dict(self._loaders[id(source)].state_dict())

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        """cstorch.save to a hidden temporary name, then rename over ``path``.

        cstorch.save refuses to overwrite, and renaming keeps a partial file from ever sitting
        under the final name. A compile/validate-only run has no weights and saves nothing.
        """
        if not self.runs_steps:
            return
        with checkpoint_file(path) as tmp:  # with its checksum file
            cstorch.save(state, str(tmp))

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """Read a checkpoint of either backend (cstorch HDF5 or torch.save) as plain CPU values,
        without ``cstorch.load``: under torch 2.4 it unpickles a torch.save file with
        ``weights_only=False`` and a pre-0.5 cstorch file's spec with dill, so a crafted file
        runs code. training/cstorch_format.py reads cstorch files from their JSON spec and
        raw arrays, and torch files with ``weights_only=True``.
        """
        return read_checkpoint(path)

    def barrier(self) -> None:
        return None

    def close(self) -> None:
        return None
