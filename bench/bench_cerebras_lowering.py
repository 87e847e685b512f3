"""Wall time of lowering one ebert_base training step to Cerebras IR on this machine:
``run.py CSX -p params/ebert_base.yaml -m train --validate_only`` inside the Cerebras venv.

The venv is the one tools/cerebras_venv.sh manages (never built here: when it is absent the JSON
says so and holds no figure). The data are train/validation splits shaped like what ebert_base
expects, and the params point at them, made by the same helpers the Cerebras tests use
(tests/run_cases.py). ``tools/cerebras_venv.sh ensure`` (the venv's import check) runs first and
is timed apart; the figure is run.py alone, with the environment ``cerebras_venv.sh run`` sets.
Writes bench/results/cerebras_lowering.json.

    PYTHONPATH=. python bench/bench_cerebras_lowering.py [--params ebert_base.yaml]
    PYTHONPATH=. python bench/bench_cerebras_lowering.py --quick   # venv check only (what tests run)
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import bench_parser, machine, run_measured, target, write_json
from tests.run_cases import data_for, write_params

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "cerebras_lowering.json"
VENV_TOOL = ROOT / "tools" / "cerebras_venv.sh"


def venv_path() -> Path:
    """Where tools/cerebras_venv.sh keeps the venv (it builds nothing when asked this)."""
    return Path(subprocess.run([str(VENV_TOOL), "path"], capture_output=True, text=True, check=True).stdout.strip())


def missing_venv(venv: Path) -> str | None:
    """Why the venv cannot be used, or None."""
    if not (venv / "bin" / "python").is_file() or not (venv / ".ebert-cerebras-venv").is_file():
        return f"no Cerebras venv at {venv}: build it with `tools/cerebras_venv.sh ensure`; figure not measured"
    return None


def lower(venv: Path, params_file: str, tmp: Path) -> dict[str, Any]:
    """Check the venv, then time run.py --validate_only on ``params/<params_file>``."""
    t0 = time.perf_counter()
    ensure = subprocess.run([str(VENV_TOOL), "ensure"], capture_output=True, text=True)
    ensure_s = time.perf_counter() - t0
    if ensure.returncode:
        raise RuntimeError(f"cerebras_venv.sh ensure failed: {ensure.stderr[-2000:]}")
    params = write_params(params_file, tmp / params_file, data_for(params_file, tmp / "data"), tmp / "model_dir")
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    measured = run_measured([str(venv / "bin" / "python"), str(ROOT / "run.py"), "CSX", "-p", str(params),
                             "-m", "train", "--validate_only"], env=env, cwd=tmp)
    if measured["returncode"] or "Compile validated locally" not in measured["output"]:
        raise RuntimeError(f"run.py --validate_only failed (exit {measured['returncode']}): {measured['output'][-2000:]}")
    cirh = sorted(p for p in (tmp / "model_dir" / "cerebras_logs" / "executors").glob("*/cirh.mlir")
                  if p.parent.name != "latest")
    return {
        "params": f"params/{params_file}", "command": "run.py CSX -p PARAMS -m train --validate_only",
        "wall_s": round(measured["seconds"], 2), "peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "venv_ensure_s": round(ensure_s, 2), "lowered_executors": len(cirh),
        "cirh_mlir_lines": [p.read_text().count("\n") for p in cirh],
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, "check the venv only; the lowering takes minutes", RESULTS)
    parser.add_argument("--params", default="ebert_base.yaml", help="a file in params/")
    args = parser.parse_args(argv)
    venv = venv_path()
    result: dict[str, Any] = {"benchmark": "cerebras_lowering", "quick": args.quick, "conditions": {**machine(), "venv": str(venv)}}
    missing = missing_venv(venv) or ("--quick: the lowering (minutes) was not run" if args.quick else None)
    if missing:
        result["available"], result["reason"] = False, missing
    else:
        result["available"] = True
        with tempfile.TemporaryDirectory() as tmp:
            result["lowering"] = lower(venv, args.params, Path(tmp))
    if not missing_venv(venv):  # what the lowering ran with (the venv's marker lists it)
        marker = (venv / ".ebert-cerebras-venv").read_text().splitlines()
        result["conditions"]["venv_packages"] = [line for line in marker if not line.startswith("key=")]
    result["targets"] = {"validate_only_wall_s": target(
        "none stated (informational)", result.get("lowering", {}).get("wall_s"), None)}
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
