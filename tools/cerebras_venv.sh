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
# the only Python cerebras-pytorch ships wheels for).
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

# The build key: anything that changes it makes a new build.
build_key() {
    { "$PYTHON" -c 'import platform; print(platform.python_version())'
      printf '%s\n' "${PINS[@]}" "${EXTRA[@]}"
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

is_valid() {  # is_valid DIR KEY: the stack, plus our dependencies as of this key
    local dir="$1" key="$2"
    stack_ok "$dir" || return 1
    grep -qx "key=$key" "$dir/$MARKER_NAME" || return 1
    "$dir/bin/python" -c "import $CHECK_IMPORTS" >/dev/null 2>&1
}

install_ours() {  # install_ours DIR KEY: our dependencies and this package, then the marker
    local dir="$1" key="$2" deps
    mapfile -t deps < <(project_dependencies)
    echo "cerebras_venv: installing this package's dependencies and the package (editable) ..." >&2
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -c "$dir/constraints.txt" "${deps[@]}" "${EXTRA[@]}"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$REPO"
    {
        echo "key=$key"
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
    echo "cerebras_venv: [1/2] ${PINS[0]} with torch 2.4 (about a minute from the pip cache, more to download) ..." >&2
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "${PINS[0]}"
    echo "cerebras_venv: [2/2] our dependencies (${SECONDS}s so far)" >&2
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
    key="$(build_key)"
    # One builder at a time per venv; others wait and then reuse its result.
    exec 9>"$VENV.lock"
    flock 9
    if ! is_valid "$VENV" "$key"; then
        if stack_ok "$VENV"; then
            # Only our dependencies changed: add them in place (the marker changes last, so an
            # interrupted update is retried, and a broken stack means a full rebuild).
            echo "cerebras_venv: updating the dependencies in $VENV" >&2
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
