"""`python run.py {CPU,GPU,CSX} --params P --mode {train,eval,train_and_eval,eval_all}` with Model
Zoo's flags. Command-line values override the YAML. Errors print one line to stderr and exit
with 2 (params) or 1 (data, checkpoint, device)."""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from ebert_modelzoo.cerebras.lowered_ir import check_lowered
from ebert_modelzoo.cerebras.registry import modelzoo_installed
from ebert_modelzoo.config.params import Params, load_params, params_from_dict
from ebert_modelzoo.data.synthetic import write_split_for
from ebert_modelzoo.errors import BadInputError, CheckpointError, ParamsError, one_line
from ebert_modelzoo.folder_lock import LOCK_FILE, folder_lock
from ebert_modelzoo.owned import remove_owned
from ebert_modelzoo.training.backends import BackendOptions, select_backend
from ebert_modelzoo.training.backends.torch import end_process
from ebert_modelzoo.training.checkpoint import list_checkpoints
from ebert_modelzoo.training.loop import LoadSettings, Trainer

LOGGER = logging.getLogger("ebert_modelzoo")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PARAMS = REPO_ROOT / "params" / "ebert_tiny.yaml"
MODES = ("train", "eval", "train_and_eval", "eval_all")
PREDICT_HINT = ("scores per window go to a file with: python -m ebert_modelzoo.evaluation.predict -p PARAMS "
                "--out predictions.tsv (.bed, .bedGraph, .bw, .npz)")


def _mode(text: str) -> str:
    if text in MODES:
        return text
    hint = f"; {PREDICT_HINT}" if text.startswith("pred") else ""
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(MODES)}){hint}")


def build_parser() -> argparse.ArgumentParser:
    """Model Zoo's run.py arguments."""
    parser = argparse.ArgumentParser(prog="run.py", description="Train or evaluate EBERT (Model Zoo run.py flags).",
                                     epilog=f"Predictions: {PREDICT_HINT}. Relative paths in the params "
                                            "(model_dir, data_dir, ckpt_path) are read from the current folder.")
    parser.add_argument("target_device", choices=("CPU", "GPU", "CSX"), help="where to run")
    parser.add_argument("-p", "--params", help=f"params YAML (default: {DEFAULT_PARAMS.relative_to(REPO_ROOT)})")
    parser.add_argument("-m", "--mode", type=_mode, default="train", metavar="{" + ",".join(MODES) + "}",
                        help="train (default); train_and_eval: evaluate every loop.eval_frequency steps and at the "
                             "end; eval: one checkpoint (--checkpoint_path, validate.ckpt_path or the newest in "
                             "model_dir); eval_all: every checkpoint in model_dir")
    parser.add_argument("-o", "--model_dir", help="checkpoints, events and metrics (overrides trainer.init.model_dir)")
    parser.add_argument("--checkpoint_path", help="checkpoint to load (default: the newest in model_dir)")
    parser.add_argument("--load_checkpoint_states",
                        help="comma-separated: all or some of model,optimizer,schedulers,grad_scaler,dataloader,step,rng")
    parser.add_argument("--disable_strict_checkpoint_loading", action="store_true", default=None,
                        help="allow missing/unexpected weights (new heads when fine-tuning)")
    parser.add_argument("--max_steps", type=int, help="total training steps (overrides loop.max_steps)")
    parser.add_argument("--eval_steps", type=int, help="batches per evaluation (overrides loop.eval_steps)")
    parser.add_argument("--num_steps", type=int, help="steps to run in this invocation (train: more steps; eval: batches)")
    parser.add_argument("--logging", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="log level (DEBUG also shows tracebacks)")
    csx = parser.add_argument_group("CSX")
    only = csx.add_mutually_exclusive_group()
    only.add_argument("--compile_only", action="store_true", help="compile without running (needs a cluster)")
    only.add_argument("--validate_only", action="store_true", help="trace and lower one step locally")
    csx.add_argument("--num_csx", type=int, default=1, help="Cerebras systems to run on (only 1 is supported)")
    csx.add_argument("--mgmt_address", help="HOST:PORT of the cluster's management node (default: the user node's config)")
    csx.add_argument("--credentials_path", help="TLS certificate of the cluster")
    csx.add_argument("--mount_dirs", nargs="*", default=[], help="folders the cluster mounts (data, model_dir, code)")
    csx.add_argument("--python_paths", nargs="*", default=[], help="folders added to PYTHONPATH on the cluster (this checkout)")
    csx.add_argument("--compile_dir", help="compile artefacts folder on the cluster")
    csx.add_argument("--job_labels", nargs="*", default=[], help="KEY=VALUE labels of the cluster job")
    gpu = parser.add_argument_group("GPU")
    gpu.add_argument("--dist_addr", help="MASTER_ADDR:PORT of torch.distributed")
    gpu.add_argument("--dist_backend", help="torch.distributed backend (nccl, gloo)")
    gpu.add_argument("--init_method", help="torch.distributed init_method (default env://)")
    return parser


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted trainer-form keys set by command-line flags."""
    overrides: dict[str, Any] = {"trainer.init.backend.backend_type": args.target_device}
    if args.model_dir is not None:
        overrides["trainer.init.model_dir"] = args.model_dir
    if args.max_steps is not None:
        overrides["trainer.init.loop.max_steps"] = args.max_steps
    if args.eval_steps is not None:
        overrides["trainer.init.loop.eval_steps"] = args.eval_steps
    if args.disable_strict_checkpoint_loading:
        overrides["trainer.init.checkpoint.disable_strict_checkpoint_loading"] = True
    return overrides


def _check_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.target_device != "CSX":
        for flag in ("compile_only", "validate_only", "mgmt_address", "credentials_path", "compile_dir"):
            if getattr(args, flag):
                parser.error(f"--{flag} is only for target CSX")
    if args.target_device != "GPU":
        for flag in ("dist_addr", "dist_backend", "init_method"):
            if getattr(args, flag):
                parser.error(f"--{flag} is only for target GPU")


def used_loaders(params: Params, mode: str) -> list[str]:
    """Dotted paths of the dataloaders a mode reads (only those must exist on disk)."""
    trainer = params.trainer
    if mode in ("train", "train_and_eval"):
        paths = ["trainer.fit.train_dataloader"]
        if mode == "train_and_eval":
            paths.append("trainer.fit.val_dataloader")
        return paths
    if mode == "eval":
        return ["trainer.validate.val_dataloader" if trainer.validate_ else "trainer.fit.val_dataloader"]
    return [path for path, _ in params.dataloaders() if path.startswith("trainer.validate_all")] or (
        ["trainer.validate.val_dataloader"] if trainer.validate_ else ["trainer.fit.val_dataloader"]
    )


def _loader(params: Params, path: str) -> Any:
    for found, loader in params.dataloaders():
        if found == path:
            return loader
    section = path.rsplit(".", 1)[0]
    raise ParamsError(f"{path}: required for this mode but {section} has none")


def refuse_strand_average(params: Params, loaders: Sequence[str], params_path: Path) -> None:
    """Model Zoo's Trainer scores one strand: params asking one of ``loaders`` to average both
    are refused before a run goes to it (run.py CSX with Model Zoo installed, Model Zoo's cszoo).

    Raises:
        ParamsError: names the first such loader's strand_average key.
    """
    averaged = [path for path in loaders if getattr(_loader(params, path), "strand_average", False)]
    if averaged:
        raise ParamsError(f"{params_path}: {averaged[0]}.strand_average: Model Zoo's Trainer scores one strand; "
                          "set it false for Model Zoo runs and score both strands with the prediction tool")


def with_synthetic_data(params: Params, loaders: Sequence[str], source: Path) -> Params:
    """``params`` with each of ``loaders`` whose data_dir does not exist pointed at a synthetic
    split shaped from the params (under model_dir/synthetic_data/), for --validate_only, which
    lowers a step from the shapes alone."""
    data = params.model_dump(by_alias=True)
    model = params.trainer.init.model
    replaced = False
    for path in loaders:
        loader = _loader(params, path)
        if Path(loader.data_dir).exists():
            continue
        name = path.removeprefix("trainer.").replace("[", "_").replace("]", "").replace(".", "_")
        root = write_split_for(Path(params.trainer.init.model_dir) / "synthetic_data" / name, model, loader)
        LOGGER.info("%s.data_dir %s not found: --validate_only uses synthetic batches shaped from the params "
                    "(%s)", path, loader.data_dir, root)
        section = data
        for part in re.findall(r"[^.\[\]]+", path):
            section = section[int(part)] if part.isdigit() else section[part]
        section["data_dir"] = str(root)
        replaced = True
    return params_from_dict(data, str(source)) if replaced else params
def _where_hint(params_path: Path, model_dir: Path) -> str:
    """What to do when model_dir holds no checkpoint, saying how relative paths were read."""
    if model_dir.is_absolute():
        return "train first or give --checkpoint_path"
    return (f"train first or give --checkpoint_path (model_dir {str(model_dir)!r} in {params_path} is read from "
            f"the current folder {Path.cwd()}; run from the folder it is relative to, or use -o/--model_dir)")


def run(args: argparse.Namespace) -> None:
    """Load the params, pick a runner (Model Zoo's Trainer for CSX where Model Zoo is installed,
    else ours) and a backend, and run the mode."""
    params_path = Path(args.params) if args.params else DEFAULT_PARAMS
    if not args.params:
        LOGGER.info("no --params given: using %s", params_path)
        if Path.cwd().resolve() != REPO_ROOT:
            # the default params' relative paths are the repository's: read them from there
            for flag in ("model_dir", "checkpoint_path"):
                if getattr(args, flag):
                    setattr(args, flag, str(Path(getattr(args, flag)).resolve()))
            LOGGER.info("its relative paths are read from %s", REPO_ROOT)
            os.chdir(REPO_ROOT)
    params = load_params(params_path, overrides_from_args(args))
    loaders = used_loaders(params, args.mode)
    for path in loaders:
        _loader(params, path)
    if args.validate_only:
        params = with_synthetic_data(params, loaders, params_path)
    model_dir = Path(params.trainer.init.model_dir)
    options = BackendOptions(
        target=args.target_device, model_dir=model_dir, dist_addr=args.dist_addr,
        dist_backend=args.dist_backend, init_method=args.init_method, compile_only=args.compile_only,
        validate_only=args.validate_only, num_csx=args.num_csx, mgmt_address=args.mgmt_address,
        credentials_path=args.credentials_path, mount_dirs=args.mount_dirs, python_paths=args.python_paths,
        compile_dir=args.compile_dir, job_labels=args.job_labels,
    )
    started = time.time()
    if args.target_device == "CSX" and modelzoo_installed():
        LOGGER.info("runner: Cerebras Model Zoo's Trainer (Model Zoo is installed; CSX runs go through it)")
        from ebert_modelzoo.cerebras.modelzoo_runner import run_with_modelzoo

        refuse_strand_average(params, loaders, params_path)
        eval_loaders = [_loader(params, path) for path in loaders] if args.mode in ("eval", "eval_all") else []
        with _model_dir_lock(model_dir, True):
            run_with_modelzoo(params, args, options, eval_loaders, _initial_checkpoint(params, args))
        if args.validate_only:
            check_lowered(model_dir, started)
        return
    backend = select_backend(options)
    if not backend.is_main:
        LOGGER.setLevel(logging.WARNING)  # one process reports
    LOGGER.info("runner: ebert_modelzoo's trainer (%s backend on %s)", backend.name, args.target_device)
    with _model_dir_lock(model_dir, backend.is_main):
        try:
            trainer = Trainer(params, backend, params_path, model_dir)
            explicit = Path(args.checkpoint_path) if args.checkpoint_path else None
            if args.mode in ("train", "train_and_eval"):
                initial = _initial_checkpoint(params, args)
                trainer.restore(LoadSettings(explicit, args.load_checkpoint_states, initial and Path(initial)))
                trainer.fit(num_steps=args.num_steps, evaluate_during=args.mode == "train_and_eval")
            elif args.mode == "eval":
                validate = params.trainer.validate_
                initial = Path(validate.ckpt_path) if validate is not None and validate.ckpt_path else None
                if explicit is None and initial is None and not list_checkpoints(model_dir):
                    raise FileNotFoundError(f"{model_dir.resolve()}: no checkpoint to evaluate; {_where_hint(params_path, model_dir)}")
                # Evaluation uses the weights and the step only (a checkpoint of the other backend has
                # optimizer/scheduler states this backend cannot restore).
                trainer.restore(LoadSettings(explicit or initial, args.load_checkpoint_states or "model,step"))
                trainer.validate(_loader(params, loaders[0]), args.num_steps, loader_path=loaders[0])
            else:
                validate_all = params.trainer.validate_all
                paths = [Path(args.checkpoint_path)] if args.checkpoint_path else (
                    [Path(p) for p in validate_all.ckpt_paths] if validate_all and validate_all.ckpt_paths else None
                )
                trainer.validate_all([(p, _loader(params, p)) for p in loaders], paths, args.num_steps)
        finally:
            backend.close()
    if args.validate_only:
        check_lowered(model_dir, started)


def _initial_checkpoint(params: Params, args: argparse.Namespace) -> Optional[str]:
    """fit.ckpt_path, except a missing one under --validate_only (the lowered step depends on
    shapes, not on weights)."""
    fit = params.trainer.fit
    initial = fit.ckpt_path if fit is not None and fit.ckpt_path else None
    if initial is not None and args.validate_only and not Path(initial).exists():
        LOGGER.info("trainer.fit.ckpt_path %s not found: --validate_only lowers the step from freshly "
                    "initialised weights", initial)
        return None
    return initial


@contextmanager
def _model_dir_lock(model_dir: Path, is_main: bool) -> Iterator[None]:
    """One run writes into a model_dir (the main process holds its lock); a run that failed
    before writing anything leaves no folder."""
    created = not os.path.lexists(model_dir)
    lock = folder_lock(model_dir, "run") if is_main else nullcontext()
    try:
        with lock:
            yield
    finally:
        if created and is_main and model_dir.is_dir() and {p.name for p in model_dir.iterdir()} <= {LOCK_FILE}:
            remove_owned(model_dir, model_dir)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of run.py; returns the exit status (after a gloo data-parallel run it ends
    the process with it instead: see training/backends/torch.py, end_process)."""
    status = _main(argv)
    end_process(status)
    return status


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_flags(args, parser)
    logging.basicConfig(level=getattr(logging, args.logging), format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stdout)
    try:
        run(args)
    except BadInputError as err:
        if args.logging == "DEBUG":
            raise
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except (OSError, CheckpointError, RuntimeError, ValueError, FloatingPointError) as err:
        # OSError: FileNotFoundError, and folders that cannot be made (a name too long, no permission)
        if args.logging == "DEBUG":
            raise
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 1
    return 0
