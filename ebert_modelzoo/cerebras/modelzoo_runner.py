"""run.py's CSX runs through Cerebras Model Zoo's Trainer when Model Zoo is installed: the path
Cerebras supports on its clusters (the one ``cszoo fit`` takes). The params run.py loaded and
checked (command-line overrides and ``--validate_only``'s synthetic data applied) go to Model
Zoo's ``run_trainer``; run.py's CSX flags become the ``runconfig`` Model Zoo's own run.py would
build, merged by its ``inject_cli_args_to_trainer_params``.
"""
from __future__ import annotations

import argparse
from typing import Any, Optional, Sequence

from ebert_modelzoo.cerebras.backend import check_csx_options
from ebert_modelzoo.config.params import Params
from ebert_modelzoo.training.backends.base import BackendOptions

# run.py flags passed on to Model Zoo's runconfig under the same names, when given.
RUNCONFIG_FLAGS = ("compile_only", "validate_only", "num_csx", "mgmt_address", "credentials_path", "mount_dirs",
                   "python_paths", "compile_dir", "job_labels", "checkpoint_path", "load_checkpoint_states",
                   "num_steps")


def modelzoo_params(params: Params, args: argparse.Namespace, eval_loaders: Sequence[Any],
                    initial_checkpoint: Optional[str]) -> dict[str, Any]:
    """The trainer-form dict Model Zoo's ``run_trainer`` takes for ``args.mode``.

    ``eval_loaders``: the dataloader sections an eval (one) or eval_all run reads (run.py falls
    back to fit.val_dataloader where the params have no validate sections, Model Zoo does not).
    ``initial_checkpoint``: fit.ckpt_path as run.py resolved it (None when --validate_only
    drops a missing one).
    """
    from cerebras.modelzoo.trainer.utils import inject_cli_args_to_trainer_params

    data = params.to_dict()
    trainer = data["trainer"]
    if trainer.get("fit") is not None:
        trainer["fit"]["ckpt_path"] = initial_checkpoint
    loaders = [loader.model_dump(by_alias=True, exclude_none=True) for loader in eval_loaders]
    if args.mode == "eval":
        trainer["validate"] = {**(trainer.get("validate") or {}), "val_dataloader": loaders[0]}
    elif args.mode == "eval_all":
        trainer["validate_all"] = {**(trainer.get("validate_all") or {}), "val_dataloaders": loaders}
    runconfig: dict[str, Any] = {"target_device": args.target_device, "mode": args.mode}
    runconfig.update({flag: getattr(args, flag) for flag in RUNCONFIG_FLAGS if getattr(args, flag, None)})
    return inject_cli_args_to_trainer_params(runconfig, data)


def run_with_modelzoo(params: Params, args: argparse.Namespace, options: BackendOptions,
                      eval_loaders: Sequence[Any], initial_checkpoint: Optional[str]) -> None:
    """Run ``args.mode`` with Model Zoo's Trainer (after the same checks as our CSX backend).

    Raises:
        ClusterAccessError: a compile or run without a cluster to talk to.
        ValueError: contradictory flags, or more than one CS system.
    """
    from cerebras.modelzoo.trainer.utils import run_trainer

    check_csx_options(options)
    run_trainer(args.mode, modelzoo_params(params, args, eval_loaders, initial_checkpoint))
