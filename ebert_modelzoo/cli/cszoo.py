"""`cszoo`: Model Zoo's command line for EBERT.

With Cerebras Model Zoo installed, EBERT is registered into it and Model Zoo's own `cszoo` runs
(a run whose params ask for what its Trainer does not do, strand_average, is refused first).
Without it, these subcommands take the same arguments and run EBERT's trainer (run.py):

    cszoo config validate FILE          check a params file, run nothing
    cszoo fit FILE                      train (and evaluate when fit.val_dataloader is set)
    cszoo validate FILE                 one evaluation run
    cszoo validate_all FILE             evaluate every checkpoint
    cszoo model list | describe NAME    registered models; config keys with docs, parameter count

Run subcommands take `--target_device {CSX,CPU,GPU}` (default: the params'
trainer.init.backend.backend_type) and Model Zoo's run flags, and hand over to
``ebert_modelzoo.cli.run.main`` with the equivalent run.py arguments.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ebert_modelzoo.cerebras import registry
from ebert_modelzoo.cerebras.lowered_ir import check_lowered
from ebert_modelzoo.cerebras.modelzoo_cli import run_modelzoo_cli
from ebert_modelzoo.cli import run as run_cli
from ebert_modelzoo.config.params import Params, load_params
from ebert_modelzoo.errors import BadInputError, ParamsError

# cszoo subcommand -> run.py mode
RUN_MODES = {"fit": "train_and_eval", "validate": "eval", "validate_all": "eval_all"}
# Params whose model each `model describe` counts when no --params is given (repository checkouts).
DESCRIBE_PARAMS = {"ebert": "ebert_base.yaml", "ebert_finetune": "ebert_finetune_base.yaml"}


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    """Model Zoo's run arguments that EBERT's trainer supports."""
    parser.add_argument("params", help="params YAML")
    parser.add_argument("--target_device", choices=("CSX", "CPU", "GPU"),
                        help="where to run (default: trainer.init.backend.backend_type)")
    parser.add_argument("-o", "--model_dir", help="checkpoints, events and metrics")
    parser.add_argument("--checkpoint_path", help="checkpoint to load")
    parser.add_argument("--load_checkpoint_states", help="all, or some of model,optimizer,...")
    parser.add_argument("--disable_strict_checkpoint_loading", action="store_true",
                        help="allow missing/unexpected weights")
    parser.add_argument("--logging", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--compile_only", action="store_true", help="CSX: compile without running")
    only.add_argument("--validate_only", action="store_true", help="CSX: lower one step locally")
    parser.add_argument("--num_csx", type=int, help="CSX: systems to run on")
    parser.add_argument("--mgmt_address", help="CSX: cluster management address HOST:PORT")
    parser.add_argument("--credentials_path", help="CSX: TLS certificate of the cluster")
    parser.add_argument("--mount_dirs", nargs="+", help="CSX: folders to mount on the cluster")
    parser.add_argument("--python_paths", nargs="+", help="CSX: PYTHONPATH entries on the cluster")
    parser.add_argument("--compile_dir", help="CSX: compile artifact folder on the cluster")
    parser.add_argument("--job_labels", nargs="+", help="CSX: name=value job labels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cszoo", description="Cerebras Model Zoo CLI for EBERT.")
    commands = parser.add_subparsers(dest="cmd", required=True)
    for name, mode in RUN_MODES.items():
        _add_run_args(commands.add_parser(name, help=f"run.py --mode {mode}"))
    config = commands.add_parser("config", help="params files").add_subparsers(dest="config_cmd", required=True)
    config.add_parser("validate", help="check a params file").add_argument("params", help="params YAML")
    model = commands.add_parser("model", help="registered models").add_subparsers(dest="model_cmd", required=True)
    model.add_parser("list", help="registered model names")
    describe = model.add_parser("describe", help="config keys with docs, and the parameter count")
    describe.add_argument("model", choices=[entry.name for entry in registry.ENTRIES])
    describe.add_argument("--params", help="count parameters of this params file's model")
    return parser


def run_mode(cmd: str, params: Params) -> str:
    """The run.py mode of a `cszoo fit|validate|validate_all` command on ``params``."""
    mode = RUN_MODES[cmd]
    # Model Zoo's fit evaluates only when it has validation data.
    if mode == "train_and_eval" and (params.trainer.fit is None or params.trainer.fit.val_dataloader is None):
        return "train"
    return mode


def run_argv(args: argparse.Namespace) -> list[str]:
    """The run.py arguments equivalent to a `cszoo fit|validate|validate_all` command."""
    params = load_params(Path(args.params))
    target = args.target_device or params.trainer.init.backend.backend_type
    argv = [target, "--params", args.params, "--mode", run_mode(args.cmd, params)]
    for flag in ("model_dir", "checkpoint_path", "load_checkpoint_states", "logging", "num_csx",
                 "mgmt_address", "credentials_path", "compile_dir"):
        value = getattr(args, flag)
        if value is not None:
            argv += [f"--{flag}", str(value)]
    for flag in ("disable_strict_checkpoint_loading", "compile_only", "validate_only"):
        if getattr(args, flag):
            argv.append(f"--{flag}")
    for flag in ("mount_dirs", "python_paths", "job_labels"):
        if getattr(args, flag):
            argv += [f"--{flag}", *getattr(args, flag)]
    return argv


def _config_class(entry: registry.RegistryEntry) -> type:
    model_cls = _import(entry.path)
    return typing.get_type_hints(model_cls.__init__)["config"]


def _import(path: str) -> Any:
    module_name, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), name)


def type_name(annotation: Any) -> str:
    """A config key's type as a user writes values: Literal choices quoted, unions joined by
    ``|``, None as ``null`` (``'gelu' | 'relu'``, ``list[float] | 'auto' | null``)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(arg) for arg in args)}]"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _describe_params_path(name: str, given: Optional[str]) -> Optional[Path]:
    if given:
        return Path(given)
    shipped = run_cli.REPO_ROOT / "params" / DESCRIBE_PARAMS[name]
    return shipped if shipped.is_file() else None


def count_parameters(model_cls: type, config: Any) -> int:
    """Trainable parameters (tied weights once), built on the meta device so nothing is allocated."""
    with torch.device("meta"):
        model = model_cls(config)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(name: str, params: Optional[str]) -> str:
    """Config keys of a registered model (type, default, doc) and its parameter count."""
    entry = next(entry for entry in registry.ENTRIES if entry.name == name)
    config_cls = _config_class(entry)
    lines = [f"{name}: {entry.path} (config {config_cls.__name__})", ""]
    for key, field in config_cls.model_fields.items():
        default = "required" if field.is_required() else repr(field.default)
        lines.append(f"  {key}: {type_name(field.annotation)} = {default}")
        if field.description:
            lines.append(f"      {' '.join(field.description.split())}")
    path = _describe_params_path(name, params)
    lines.append("")
    if path is None:
        lines.append("parameters: give --params FILE to count them for a configuration")
    else:
        config = load_params(path).trainer.init.model
        if config.name != name:
            raise ParamsError(f"{path}: trainer.init.model.name is {config.name!r}, not {name!r}")
        lines.append(f"parameters: {count_parameters(_import(entry.path), config):,} ({path})")
    return "\n".join(lines)


def check_modelzoo_run(argv: Sequence[str]) -> Optional[Path]:
    """Before a `cszoo fit|validate|validate_all PARAMS ...` goes to Model Zoo's Trainer: params it
    would run differently from run.py are refused (strand_average: it scores one strand).

    Returns:
        The model_dir whose Cerebras IR a ``--validate_only`` run must write (its -o /
        --model_dir, else the params'); None for any other command.

    Raises:
        ParamsError: such params.
    """
    if len(argv) < 2 or argv[0] not in RUN_MODES or argv[1].startswith("-"):
        return None  # not a run, or Model Zoo's own usage error to report
    path = Path(argv[1])
    params = load_params(path)
    run_cli.refuse_strand_average(params, run_cli.used_loaders(params, run_mode(argv[0], params)), path)
    if "--validate_only" not in argv:
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-o", "--model_dir")
    given = parser.parse_known_args(argv[2:])[0].model_dir
    return Path(given) if given else Path(params.trainer.init.model_dir)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `cszoo` console script; returns the exit status."""
    try:
        if registry.modelzoo_installed():
            argv = list(sys.argv[1:] if argv is None else argv)
            model_dir, started = check_modelzoo_run(argv), time.time()
            status = run_modelzoo_cli(argv)
            if model_dir is not None:  # Cerebras' log claims success even where a step lowered to nothing
                check_lowered(model_dir, started)
            return status
        args = build_parser().parse_args(argv)
        if args.cmd in RUN_MODES:
            return run_cli.main(run_argv(args))
        if args.cmd == "config":
            params = load_params(Path(args.params))
            model = params.trainer.init.model
            print(f"{args.params}: valid (model {model.name}, target {params.trainer.init.backend.backend_type})")
            return 0
        if args.model_cmd == "list":
            print("\n".join(entry.name for entry in registry.ENTRIES))
            return 0
        print(describe(args.model, args.params))
        return 0
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
