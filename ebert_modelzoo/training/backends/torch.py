"""Plain PyTorch backend: CPU, one CUDA GPU, or several through torchrun (DDP)."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist

from ebert_modelzoo.config.params import AdamWConfig, InitConfig, PrecisionConfig
from ebert_modelzoo.cpu_allocator import keep_freed_memory
from ebert_modelzoo.training.backends.base import Batch, BackendOptions, DataFeed, F
from ebert_modelzoo.training.checkpoint import atomic_torch_save, read_checkpoint
from ebert_modelzoo.training.schedules import PhasedLinearLR, schedule_phases

_HALF = {"bfloat16": torch.bfloat16, "cbfloat16": torch.bfloat16, "float16": torch.float16}
_gloo_started = False  # this process ran a gloo process group (see end_process)


def end_process(status: int) -> None:
    """After a gloo process group, end the process now with ``status``, skipping interpreter
    finalization; otherwise return (the caller exits normally).

    Why: in torch 2.13, importing torch.distributed.fsdp (torch._dynamo does, and the optimizer
    step imports that) keeps references to the default process group, so
    ``destroy_process_group()`` cannot free it and its gloo worker threads outlive ``main``. A
    worker that releases a finished collective's tensors after finalization has begun must take
    the GIL, and a thread taking the GIL then exits, which aborts the process ("terminate called
    without an active exception", SIGABRT) after a complete run: 7 of 20 two-rank runs on a busy
    2-core machine. Everything is saved and closed before this is called.
    """
    if not _gloo_started:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class TorchBackend:
    """Identity wrappers around the step functions; tensors moved with ``.to(device)``."""

    name = "torch"
    runs_steps = True

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if options.target == "GPU":
            if not torch.cuda.is_available():
                raise RuntimeError("target GPU: no CUDA device is visible to torch (use CPU, or check CUDA_VISIBLE_DEVICES)")
            torch.cuda.set_device(local_rank)
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
            keep_freed_memory()
        if self.world_size > 1:
            self._init_process_group()
        self.is_main = self.rank == 0
        self._gloo_model: torch.nn.Module | None = None
        """The model whose gradients reduce_gradients averages (gloo data parallelism)."""

    def _init_process_group(self) -> None:
        if self.options.dist_addr:
            host, _, port = self.options.dist_addr.partition(":")
            os.environ["MASTER_ADDR"] = host
            if port:
                os.environ["MASTER_PORT"] = port
        backend = self.options.dist_backend or ("nccl" if self.device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, init_method=self.options.init_method or "env://",
                                rank=self.rank, world_size=self.world_size)
        if backend == "gloo":
            global _gloo_started
            _gloo_started = True

    def setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model.to(self.device)
        if self.world_size == 1:
            return model
        if dist.get_backend() != "gloo":
            ids = [self.device.index] if self.device.type == "cuda" else None
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        # gloo: no DDP. reduce_gradients averages the gradients after backward, and ranks start
        # from rank 0's state. (DDP's all-reduces from autograd hooks were where the gloo abort at
        # interpreter shutdown first showed; its cause and cure are in end_process.)
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor, src=0)
        self._gloo_model = model
        return model

    def reduce_gradients(self, model: torch.nn.Module) -> None:
        if self._gloo_model is None:
            return  # one process, or DDP reduced during backward
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def make_optimizer(self, param_groups: list[dict[str, Any]], config: AdamWConfig) -> torch.optim.Optimizer:
        if not config.correct_bias:
            raise ValueError("trainer.init.optimizer.AdamW.correct_bias: false is only available on the cstorch backend")
        lr = config.learning_rate if config.learning_rate is not None else 0.0
        return torch.optim.AdamW(param_groups, lr=lr, betas=config.betas, eps=config.eps,
                                 weight_decay=config.weight_decay)

    def make_schedulers(self, optimizer: torch.optim.Optimizer, init: InitConfig) -> list[Any]:
        phases = schedule_phases(init)
        return [] if phases is None else [PhasedLinearLR(optimizer, phases)]

    def load_scheduler_state(self, scheduler: Any, state: dict[str, Any]) -> None:
        scheduler.load_state_dict(state)  # PhasedLinearLR sets the groups' rate itself

    def make_grad_scaler(self, precision: PrecisionConfig) -> Any:
        if not (precision.enabled and precision.fp16_type == "float16"):
            return None  # bfloat16 has float32's range: no loss scaling needed
        if precision.loss_scaling_factor == "dynamic":
            return torch.amp.GradScaler(self.device.type)
        # A constant scale: it never grows; a step whose gradients overflow is skipped and only
        # then is the scale halved (torch's GradScaler cannot keep it fixed through an overflow).
        return torch.amp.GradScaler(self.device.type, init_scale=precision.loss_scaling_factor,
                                    growth_interval=2**31 - 1)

    def autocast(self, precision: PrecisionConfig) -> AbstractContextManager:
        if not precision.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_HALF[precision.fp16_type])

    def wrap_train_step(self, fn: F) -> F:
        return fn

    def wrap_eval_step(self, fn: F) -> F:
        return fn

    def on_host(self, fn: F) -> F:
        return fn

    def on_checkpoint(self, fn: F) -> F:
        return fn

    def data_position(self, source: DataFeed) -> dict[str, int]:
        return source.state_dict()

    def batches(self, source: DataFeed, num_steps: int, split: bool = True,
                checkpoint_steps: Sequence[int] = ()) -> Iterator[Batch]:
        """Every step can save here, so ``checkpoint_steps`` changes nothing."""
        produced = empty_passes = 0
        while produced < num_steps:
            before = produced
            for batch in source.next_epoch():
                if split and self.world_size > 1:
                    batch = self._rows_of_rank(batch)
                yield {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
                produced += 1
                if produced == num_steps:
                    return
            # One empty pass is a loader resumed exactly at the end of its epoch; two are no data.
            empty_passes = empty_passes + 1 if produced == before else 0
            if empty_passes == 2:
                raise ValueError("the dataloader produced no batch (fewer samples than batch_size with drop_last?)")

    def _rows_of_rank(self, batch: Batch) -> Batch:
        """This rank's contiguous slice of a global batch (every rank reads the same batches)."""
        size = next(iter(batch.values())).shape[0]
        if size % self.world_size:
            raise ValueError(f"batch_size {size} is not divisible by the {self.world_size} processes")
        share = size // self.world_size
        return {key: value[self.rank * share:(self.rank + 1) * share] for key, value in batch.items()}

    def save_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        atomic_torch_save(state, path)

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        return read_checkpoint(path)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            self._gloo_model = None
            dist.destroy_process_group()
