"""The backend interface. The loop (training/loop.py) and the step functions (training/step.py)
are written once against it; a backend decides where tensors live and how a step is executed.

Plain torch: identity wrappers, ``.to(device)``, torch.optim.AdamW, torch.amp, atomic torch.save.
cerebras.pytorch: ``cstorch.compile``, ``cstorch.trace`` / ``cstorch.step_closure``,
cstorch.optim.AdamW, DataExecutor, ``cstorch.checkpoint_closure``, ``cstorch.save`` / ``cstorch.load``.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol, Sequence, TypeVar

import torch

from ebert_modelzoo.config.params import AdamWConfig, InitConfig, PrecisionConfig

F = TypeVar("F", bound=Callable[..., Any])
Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class BackendOptions:
    """Command-line settings a backend may need besides the params."""

    target: str = "CPU"
    """CPU, GPU or CSX (the run.py positional argument)."""
    model_dir: Path = Path("model_dir")
    """Where artifacts go (cstorch writes its executors/ bookkeeping here)."""
    dist_addr: Optional[str] = None
    """GPU: MASTER_ADDR:PORT for torch.distributed (default: torchrun's environment)."""
    dist_backend: Optional[str] = None
    """GPU: torch.distributed backend (default nccl on CUDA, gloo on CPU)."""
    init_method: Optional[str] = None
    """GPU: torch.distributed init_method URL (default env://)."""
    compile_only: bool = False
    """CSX: compile without running."""
    validate_only: bool = False
    """CSX: trace and lower one step locally, without a cluster."""
    num_csx: int = 1
    """CSX: systems to run on."""
    mgmt_address: Optional[str] = None
    """CSX: cluster management address."""
    credentials_path: Optional[str] = None
    """CSX: TLS certificate of the cluster."""
    mount_dirs: list[str] = field(default_factory=list)
    """CSX: folders to mount on the cluster."""
    python_paths: list[str] = field(default_factory=list)
    """CSX: PYTHONPATH entries on the cluster."""
    compile_dir: Optional[str] = None
    """CSX: compile artifact folder on the cluster."""
    job_labels: list[str] = field(default_factory=list)
    """CSX: name=value labels for the job."""


class DataFeed(Protocol):
    """One dataloader section as the backends read it (training/tasks.py's DataSource)."""

    config: Any
    """The validated dataloader section."""

    def next_epoch(self) -> Iterable[Batch]:
        """The batches from the current position to the end of its epoch."""

    def state_dict(self) -> dict[str, int]:
        """The current position (epoch, batch)."""


class Backend(Protocol):
    """What the loop needs from a device backend."""

    name: str
    """'torch' or 'cstorch', written to the checkpoint: a checkpoint of the other backend has its
    optimizer, schedule and loss-scale states converted (training/optimizer_state.py)."""
    device: torch.device
    """Where the model's parameters live after setup_model."""
    is_main: bool
    """True on the process that logs and writes checkpoints (rank 0)."""
    rank: int
    """This process's rank (0 without distribution)."""
    world_size: int
    """Number of data-parallel processes."""
    runs_steps: bool
    """False when steps are only traced and lowered, never computed (CSX compile_only or
    validate_only): there are no losses, metrics or weights to report or save."""

    def setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move/compile/wrap the model; returns the module the step functions call."""

    def make_optimizer(self, param_groups: list[dict[str, Any]], config: AdamWConfig) -> torch.optim.Optimizer:
        """AdamW over ``param_groups`` (learning rate set later by the schedulers if any)."""

    def make_schedulers(self, optimizer: torch.optim.Optimizer, init: InitConfig) -> list[Any]:
        """The schedulers of ``init.schedulers`` (empty list for a constant learning rate)."""

    def load_scheduler_state(self, scheduler: Any, state: dict[str, Any]) -> None:
        """Restore one scheduler's position, its optimizer's learning rate set to match (whether
        or not the optimizer's own state is restored too)."""

    def make_grad_scaler(self, precision: PrecisionConfig) -> Any:
        """A GradScaler-like object (scale/unscale_/step/update/state_dict) or None."""

    def autocast(self, precision: PrecisionConfig) -> AbstractContextManager:
        """Context under which the forward runs (mixed precision or a no-op)."""

    def reduce_gradients(self, model: torch.nn.Module) -> None:
        """Average the gradients over data-parallel processes after backward (a no-op where the
        model from setup_model does it itself, or with one process)."""

    def wrap_train_step(self, fn: F) -> F:
        """Wrap the train step (identity, or cstorch.trace)."""

    def wrap_eval_step(self, fn: F) -> F:
        """Wrap the eval step (identity, or cstorch.trace)."""

    def on_host(self, fn: F) -> F:
        """Wrap a function that reads step results on the host (identity, or cstorch.step_closure)."""

    def batches(self, source: DataFeed, num_steps: int, split: bool = True,
                checkpoint_steps: Sequence[int] = ()) -> Iterator[Batch]:
        """Exactly ``num_steps`` batches of ``source`` from its current position, epoch after
        epoch. With ``split``, each data-parallel process gets its share of the rows of every
        global batch; without it, every process gets whole batches (evaluation).
        ``checkpoint_steps``: the positions (1 = the first of these batches) after which the
        loop saves through an ``on_checkpoint`` function."""

    def on_checkpoint(self, fn: F) -> F:
        """Wrap the function that saves a checkpoint: identity, or ``cstorch.checkpoint_closure``
        (it runs at the end of the step, and only at the ``checkpoint_steps`` given to
        ``batches``, the only steps whose weights and data position a CSX run can fetch)."""

    def data_position(self, source: DataFeed) -> dict[str, int]:
        """Where ``source``'s data stands after the current step; call it inside an
        ``on_checkpoint`` function (on CSX it is read from the cluster's input workers)."""

    def save_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        """Write ``state`` to ``path`` with its checksum file (training/checkpoint.py,
        ``checkpoint_file``) so that no partial file is ever visible under either name."""

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """Read a checkpoint written by either backend (tensors on the CPU)."""

    def barrier(self) -> None:
        """Wait for every process (no-op without distribution)."""

    def close(self) -> None:
        """Release process groups and other resources."""
