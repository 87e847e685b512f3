#!/usr/bin/env bash
# The Cerebras virtual environment: cerebras-pytorch (which pins torch 2.4.0) cannot share a venv
# with the CPU torch of the dev venv, so it lives in its own, built once per user and reused by
# every clone.
#
#   tools/cerebras_venv.sh ensure          build or reuse the venv; print its path
#   tools/cerebras_venv.sh run CMD [ARG..] run CMD with the venv's bin/ first on PATH and this
#                                          clone on PYTHONPATH (building the venv if needed)
#   tools/cerebras_venv.sh path            print where the venv is (builds nothing)
#
# Environment: EBERT_CEREBRAS_VENV (where the venv lives), EBERT_CEREBRAS_PYTHON (a CPython 3.11,
# the only Python cerebras-pytorch ships wheels for), EBERT_MODELZOO_SRC (Cerebras Model Zoo
# Release_2.10.0: a git clone of it, or the source tarball of the tag).
#
# Model Zoo is not on any package registry: it is installed editable (its setup.py refuses
# anything else) from EBERT_MODELZOO_SRC, else from the snapshot a checkout of this project finds
# in ../shared/vendor or ../../shared/vendor (test setup only; nothing reads it at run time). A
# tarball is unpacked inside the build, a clone is used where it is. Without a source, the venv is
# built without Model Zoo (its tests skip), except under CI=true, where that is an error. Only
# what Model Zoo needs to import and run its validator, CLI and Trainer is installed, at the
# versions of its requirements.txt; `bigcode_eval`, which exists only on GitHub, is replaced by
# an import-only stand-in written here (Model Zoo imports it at startup).
#
# Layout: $VENV is a symlink to $VENV.builds/<id>, a venv built in place there. A build becomes
# visible only when the symlink is switched to it (an atomic rename), after its marker file is
# written, so an interrupted build is never taken for a usable one. Venvs cannot be moved once
# built (their scripts, torch-cirh-opt included, name their interpreter by absolute path), hence
# the symlink rather than renaming the build folder itself.
set -euo pipefail

CEREBRAS_PYTORCH_VERSION=2.10.0
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ebert-modelzoo"
VENV="${EBERT_CEREBRAS_VENV:-$CACHE_ROOT/cerebras-venv-$CEREBRAS_PYTORCH_VERSION}"
PYTHON="${EBERT_CEREBRAS_PYTHON:-python3.11}"
MARKER_NAME=.ebert-cerebras-venv
# Versions the Cerebras stack pins; the rest of our dependencies are resolved around them.
PINS=("cerebras-pytorch==$CEREBRAS_PYTORCH_VERSION" "torch==2.4.0" "numpy==1.25.0")
# Our runtime dependencies come from pyproject.toml (so they cannot drift), plus the test runner
# and what the offline editable install of this package needs (--no-build-isolation).
EXTRA=("pytest>=7" "setuptools>=64" "wheel")
# Modules that must import for the venv to count as valid.
CHECK_IMPORTS="cerebras.pytorch, torch, numpy, h5py, yaml, pydantic, pyBigWig, pyfaidx, tqdm, matplotlib, pytest"
MODELZOO_VERSION=2.10.0
MODELZOO_TARBALL=cerebras-modelzoo-$MODELZOO_VERSION.tar.gz
# What Model Zoo's validator, cszoo and Trainer import (found by importing them), at the versions
# its requirements.txt pins; the rest of its requirements (data preparation, evaluation harnesses)
# are left out.
# lm_eval is a URL requirement there (the 0.4.9.1 tag), pinned here to the registry's same version.
MODELZOO_DEPS=(argcomplete requests slack-sdk transformers torchvision rich lm_eval==0.4.9.1 jsonschema pydantic tabulate)
MODELZOO_CHECK_IMPORTS="cerebras.modelzoo.cli.main, cerebras.modelzoo.trainer.validate_configs, cerebras.modelzoo.trainer"
MODELZOO_SRC=""

die() { echo "cerebras_venv: $*" >&2; exit 1; }

# A build folder that is not finished is removed however the script ends.
BUILDING=""
trap 'if [[ -n "$BUILDING" ]]; then rm -rf "$BUILDING"; fi' EXIT
trap 'exit 130' INT TERM

project_dependencies() {
    "$PYTHON" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
# torch, numpy and h5py come pinned with cerebras-pytorch; the constraints keep them there.
print("\n".join(d for d in deps if not d.lower().startswith(("torch", "numpy", "h5py"))))
EOF
}

# Where Model Zoo comes from: EBERT_MODELZOO_SRC, else the vendored snapshot next to this
# checkout; empty when there is none (an error under CI=true).
modelzoo_source() {
    if [[ -n "${EBERT_MODELZOO_SRC:-}" ]]; then
        [[ -e "$EBERT_MODELZOO_SRC" ]] || die "EBERT_MODELZOO_SRC=$EBERT_MODELZOO_SRC does not exist"
        readlink -f "$EBERT_MODELZOO_SRC"
        return
    fi
    local candidate
    for candidate in "$REPO/../shared/vendor/$MODELZOO_TARBALL" "$REPO/../../shared/vendor/$MODELZOO_TARBALL"; do
        if [[ -f "$candidate" ]]; then readlink -f "$candidate"; return; fi
    done
    if [[ "${CI:-}" == "true" ]]; then
        die "CI=true but no Model Zoo snapshot: expected ../shared/vendor/$MODELZOO_TARBALL next to $REPO, or EBERT_MODELZOO_SRC"
    fi
    echo "cerebras_venv: no Model Zoo source (set EBERT_MODELZOO_SRC to a clone of Release_2.10.0); building without it" >&2
}

# Identity of the Model Zoo source: the tarball's hash, or the clone's path and commit.
modelzoo_identity() {
    local src="$1"
    if [[ -z "$src" ]]; then echo "modelzoo=none"
    elif [[ -f "$src" ]]; then echo "modelzoo=$(sha256sum "$src" | cut -c1-16)"
    else echo "modelzoo=$src@$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unversioned)"
    fi
}

# The build key: anything that changes it makes a new build.
build_key() {
    { "$PYTHON" -c 'import platform; print(platform.python_version())'
      printf '%s\n' "${PINS[@]}" "${EXTRA[@]}" "${MODELZOO_DEPS[@]}"
      modelzoo_identity "$MODELZOO_SRC"
      project_dependencies; } | sha256sum | cut -c1-16
}

stack_ok() {  # stack_ok DIR: a finished build whose Cerebras stack imports at its pinned versions
    local dir="$1"
    [[ -f "$dir/$MARKER_NAME" && -x "$dir/bin/torch-cirh-opt" ]] || return 1
    "$dir/bin/python" - <<EOF >/dev/null 2>&1
import importlib.metadata as md
import cerebras.pytorch, numpy, torch
assert md.version("cerebras-pytorch") == "$CEREBRAS_PYTORCH_VERSION"
assert numpy.__version__ == "1.25.0", numpy.__version__
assert torch.__version__.startswith("2.4.0"), torch.__version__
EOF
}

is_valid() {  # is_valid DIR KEY: the stack, plus our dependencies (and Model Zoo) as of this key
    local dir="$1" key="$2"
    stack_ok "$dir" || return 1
    grep -qx "key=$key" "$dir/$MARKER_NAME" || return 1
    "$dir/bin/python" -c "import $CHECK_IMPORTS" >/dev/null 2>&1 || return 1
    [[ -z "$MODELZOO_SRC" ]] || (cd / && "$dir/bin/python" -W ignore -c "import $MODELZOO_CHECK_IMPORTS" >/dev/null 2>&1)
}

# An import-only stand-in for bigcode-evaluation-harness: the module names Model Zoo imports at
# startup (for its BigCode evaluation extension, unusable here); every entry point raises.
write_bigcode_standin() {  # write_bigcode_standin DIR
    local dir="$1" msg="bigcode_eval here is an import-only stand-in (the BigCode harness is not installed)"
    mkdir -p "$dir/bigcode_eval"
    cat >"$dir/pyproject.toml" <<EOF
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"
[project]
name = "bigcode_eval"
version = "0.0.0+importonly"
description = "Import-only stand-in for bigcode-evaluation-harness, written by ebert-modelzoo's tools/cerebras_venv.sh"
[tool.setuptools]
packages = ["bigcode_eval"]
EOF
    printf '"""%s."""\n' "$msg" >"$dir/bigcode_eval/__init__.py"
    printf 'class Task:\n    """Stand-in base class."""\n' >"$dir/bigcode_eval/base.py"
    printf 'class Evaluator:\n    def __init__(self, *args, **kwargs):\n        raise RuntimeError("%s")\n' "$msg" >"$dir/bigcode_eval/evaluator.py"
    printf 'TASK_REGISTRY = {}\nALL_TASKS = []\n\n\ndef get_task(*args, **kwargs):\n    raise RuntimeError("%s")\n' "$msg" >"$dir/bigcode_eval/tasks.py"
    printf 'def update_code_gens(*args, **kwargs):\n    raise RuntimeError("%s")\n' "$msg" >"$dir/bigcode_eval/utils.py"
}

install_modelzoo() {  # install_modelzoo DIR: Model Zoo (editable), what it needs, the stand-in
    local dir="$1" tree="$MODELZOO_SRC"
    [[ -n "$tree" ]] || return 0
    if [[ -f "$tree" ]]; then
        mkdir -p "$dir/modelzoo-src"
        tar -xzf "$tree" -C "$dir/modelzoo-src" --strip-components=1
        tree="$dir/modelzoo-src"
    fi
    [[ -f "$tree/requirements.txt" && -d "$tree/src/cerebras/modelzoo" ]] || die "$tree is not a Model Zoo source tree"
    # Its pins (URL requirements dropped) as constraints, under the Cerebras stack's own.
    { grep -vE '@|^(torch|numpy|cerebras)' "$tree/requirements.txt"; cat "$dir/constraints.txt"; } >"$dir/modelzoo-constraints.txt"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -c "$dir/modelzoo-constraints.txt" \
        "${MODELZOO_DEPS[@]}" "${EXTRA[@]}"
    write_bigcode_standin "$dir/bigcode-eval-standin"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation "$dir/bigcode-eval-standin"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$tree"
}

install_ours() {  # install_ours DIR KEY: our dependencies and this package, then the marker
    local dir="$1" key="$2" deps
    mapfile -t deps < <(project_dependencies)
    echo "cerebras_venv: installing this package's dependencies and the package (editable) ..." >&2
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -c "$dir/constraints.txt" "${deps[@]}" "${EXTRA[@]}"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$REPO"
    {
        echo "key=$key"
        modelzoo_identity "$MODELZOO_SRC"
        echo "python=$("$dir/bin/python" -c 'import platform; print(platform.python_version())')"
        "$dir/bin/python" -m pip freeze --disable-pip-version-check --exclude-editable \
            | grep -iE '^(cerebras[-_]pytorch|cerebras[-_]appliance|torch|numpy|h5py|pydantic|pyyaml|pybigwig|pyfaidx)=='
    } >"$dir/$MARKER_NAME.tmp"
    mv "$dir/$MARKER_NAME.tmp" "$dir/$MARKER_NAME"
}

build() {  # build KEY -> builds a new venv and switches $VENV to it
    local key="$1" builds="$VENV.builds" dir
    dir="$builds/$key-$(date +%Y%m%d%H%M%S)-$$"
    mkdir -p "$builds"
    echo "cerebras_venv: building $dir (cerebras-pytorch $CEREBRAS_PYTORCH_VERSION; ~3 GB download the first time)" >&2
    BUILDING="$dir"
    "$PYTHON" -m venv "$dir"
    printf '%s\n' "${PINS[@]}" >"$dir/constraints.txt"
    echo "cerebras_venv: [1/3] ${PINS[0]} with torch 2.4 (about a minute from the pip cache, more to download) ..." >&2
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "${PINS[0]}"
    echo "cerebras_venv: [2/3] Model Zoo ${MODELZOO_SRC:-(none)} and what it imports (a few minutes) ..." >&2
    install_modelzoo "$dir"
    echo "cerebras_venv: [3/3] our dependencies (${SECONDS}s so far)" >&2
    install_ours "$dir" "$key"
    is_valid "$dir" "$key" || die "the new venv $dir failed its import check"
    echo "cerebras_venv: built in ${SECONDS}s" >&2
    BUILDING=""
    ln -sfn "$dir" "$VENV.link.$$"
    mv -Tf "$VENV.link.$$" "$VENV"
    # Older builds are no longer reachable; the pip download cache (~/.cache/pip) is kept.
    for old in "$builds"/*; do
        [[ "$old" == "$dir" ]] || rm -rf "$old"
    done
}

# The editable install names one clone; point it at this one so `cszoo` and imports outside
# `run` see the clone that last used the venv (`run` also puts this clone first on PYTHONPATH).
point_at_repo() {
    local current
    current="$(cd / && "$VENV/bin/python" -c 'import ebert_modelzoo, os; print(os.path.dirname(os.path.dirname(ebert_modelzoo.__file__)))' 2>/dev/null || true)"
    if [[ "$current" != "$REPO" ]]; then
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$REPO" >&2
    fi
}

ensure() {
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: cerebras-pytorch needs CPython 3.11 (set EBERT_CEREBRAS_PYTHON)"
    [[ -e "$VENV" && ! -L "$VENV" ]] && die "$VENV exists and is not a venv link made by this script; remove it or set EBERT_CEREBRAS_VENV"
    mkdir -p "$(dirname "$VENV")"
    local key
    MODELZOO_SRC="$(modelzoo_source)"
    key="$(build_key)"
    # One builder at a time per venv; others wait and then reuse its result.
    exec 9>"$VENV.lock"
    flock 9
    if ! is_valid "$VENV" "$key"; then
        if stack_ok "$VENV" && grep -qx "$(modelzoo_identity "$MODELZOO_SRC")" "$VENV/$MARKER_NAME"; then
            # Only our dependencies changed: add them in place (the marker changes last, so an
            # interrupted update is retried, and a broken stack or another Model Zoo source
            # means a full rebuild).
            echo "cerebras_venv: updating the dependencies in $VENV" >&2
            install_modelzoo "$(readlink -f "$VENV")"
            install_ours "$(readlink -f "$VENV")" "$key"
        fi
        is_valid "$VENV" "$key" || build "$key"
    fi
    point_at_repo
    flock -u 9
    echo "$VENV"
}

case "${1:-}" in
    ensure) ensure ;;
    path) echo "$VENV" ;;
    run)
        shift
        [[ $# -gt 0 ]] || die "usage: $0 run CMD [ARG...]"
        ensure >/dev/null
        export VIRTUAL_ENV="$VENV"
        export PATH="$VENV/bin:$PATH"
        export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
        exec "$@"
        ;;
    *) die "usage: $0 {ensure|run CMD [ARG...]|path}" ;;
esac
