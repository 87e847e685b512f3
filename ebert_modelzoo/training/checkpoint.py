"""Checkpoint files: names, atomic writes, listing/pruning, RNG capture, and loading a model's
weights with a clear report of what does not match.

A checkpoint is a plain dict that ``torch.load(weights_only=True)`` reads back on either backend
(the cstorch backend writes it with ``cstorch.save``, HDF5, which ``read_checkpoint`` also reads)::

    {"format_version": 1, "step": int, "model": state_dict, "optimizer": state_dict,
     "schedulers": [state_dict], "grad_scaler": state_dict | None, "rng": {...},
     "data_state": {...}, "params": trainer-form dict,
     "global_step": int, "dataloader": {...}}

The last two are the names Cerebras Model Zoo's Trainer reads the step and the data position
from, so its ``fit`` resumes from our checkpoints; its own checkpoints (``global_step``,
``dataloader``, the params in ``__metadata__``) are read into our names by ``from_modelzoo``.

Integrity, the same for both backends: the checksum file ``checkpoint_<N>.mdl.xxh128`` holds the
XXH3 128-bit hash of the complete file (``<32 hex digits>  checkpoint_<N>.mdl``, the layout of
``sha256sum``; the suffix names the hash) and is renamed into place before the checkpoint appears
under its name. The torch backend hashes the bytes as ``torch.save`` streams them
(``checkpoint_stream``), chunks of 1 MiB and more on a worker thread while this one writes them,
so the file is never read again and, given a free core, the hash runs beside the writes; the
cstorch backend's HDF5 writer needs a path and seeks, so ``checkpoint_file`` hashes the finished
file (from the page cache) on the worker while it is fsynced. Either way the checksum file is written and fsynced on
the worker while the checkpoint is fsynced, so its fsync does not follow the checkpoint's.
XXH3 runs at memory speed (about 30 GB/s here, sha256 under 2 GB/s), which is what keeps the
checksum cheap next to a save and a verified load; torch.save's own per-record CRC-32s, which
cost 4-5 times as much and which torch.load never checks, are left out (``zip_crc32``).
``verify_checkpoint`` checks a file before it is read; checksum files of older runs (``.sha256``)
still verify, and a checkpoint without either (copied alone) is read unverified, with a log line.

Re-saving a step that exists (a resumed run reaching it again) keeps one intact checkpoint under
the name at every instant: the checksum file first lists the new hash and the old one, then the
checkpoint is renamed over the old, then the old hash is dropped.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import xxhash

from ebert_modelzoo.atomic import fsync_dir, fsync_file, tmp_name, tmp_pattern
from ebert_modelzoo.errors import CheckpointError
from ebert_modelzoo.training.cstorch_format import is_cstorch_checkpoint, read_cstorch_checkpoint

FORMAT_VERSION = 1
_NAME = re.compile(r"^checkpoint_(\d+)\.mdl$")
CHECKSUM_SUFFIX = ".xxh128"
"""Suffix of the checksum files written now."""
_HASHES: dict[str, Callable[[], Any]] = {CHECKSUM_SUFFIX: xxhash.xxh3_128, ".sha256": hashlib.sha256}
"""Checksum file suffix -> hash constructor, the current one first (older suffixes still verify)."""
LOGGER = logging.getLogger("ebert_modelzoo")


def checkpoint_path(model_dir: str | Path, step: int) -> Path:
    """Model Zoo's name for the checkpoint written after ``step`` steps."""
    return Path(model_dir) / f"checkpoint_{step}.mdl"


def list_checkpoints(model_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``model_dir`` as (step, path), in step order.

    Files being written are named ``.checkpoint_<N>.mdl.<host>-<pid>.tmp`` and never match.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(model_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in ``model_dir``, if any."""
    found = list_checkpoints(model_dir)
    return found[-1][1] if found else None


def prune_checkpoints(model_dir: str | Path, keep_last: int | None) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (None keeps all) with their checksum
    files, checksum files without a checkpoint, and temporaries left by interrupted writes (one
    process writes into a model_dir: see folder_lock)."""
    folder = Path(model_dir)
    for tmp in folder.glob(tmp_pattern("checkpoint_*.mdl*")):
        tmp.unlink()
    doomed = [path for _, path in list_checkpoints(folder)][:-keep_last] if keep_last is not None else []
    for path in doomed:
        path.unlink()
    for suffix in _HASHES:
        for checksum in folder.glob(f"checkpoint_*.mdl{suffix}"):
            if not checksum.with_suffix("").is_file():
                checksum.unlink()


def checksum_path(path: str | Path, suffix: str = CHECKSUM_SUFFIX) -> Path:
    """The checksum file (by default the current kind, ``.xxh128``) of the checkpoint at ``path``."""
    path = Path(path)
    return path.with_name(path.name + suffix)


def file_digest(path: str | Path, suffix: str = CHECKSUM_SUFFIX, block: int = 1 << 22) -> str:
    """Hex digest of a file's bytes with the hash that checksum files ending in ``suffix`` hold."""
    digest = _HASHES[suffix]()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


_OVERLAP_BYTES = 1 << 20
"""Chunks at least this large are hashed on a worker thread while this thread writes them (xxhash
and file writes both release the GIL); smaller ones are hashed in line, where handing them over
would cost more than hashing them. Also the size of the buffer in front of the hashing file, which
gathers torch.save's many small records into few chunks."""


class _HashingFile(io.RawIOBase):
    """The raw file under ``checkpoint_stream``'s buffer: writes each chunk it is handed to
    ``file`` and hashes it, chunks of ``_OVERLAP_BYTES`` and more on ``worker`` meanwhile."""

    def __init__(self, file: io.FileIO, worker: ThreadPoolExecutor) -> None:
        super().__init__()
        self.file, self.worker, self.digest = file, worker, xxhash.xxh3_128()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        hashed = self.worker.submit(self.digest.update, view) if view.nbytes >= _OVERLAP_BYTES else None
        if hashed is None:
            self.digest.update(view)
        try:
            written = 0
            while written < view.nbytes:  # one write(2) may take only part of a large chunk
                written += self.file.write(view[written:])
        finally:
            if hashed is not None:
                hashed.result()  # before returning: the caller may reuse the chunk's memory, and the next chunk follows
        return written


_WORKER: tuple[int, ThreadPoolExecutor] | None = None


def _worker() -> ThreadPoolExecutor:
    """This process's checkpoint worker thread, started once: starting a thread per save costs
    more than a small checkpoint's checksum (a forked child starts its own)."""
    global _WORKER
    if _WORKER is None or _WORKER[0] != os.getpid():
        _WORKER = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-checksum"))
    return _WORKER[1]


def _fresh_tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(tmp_name(path.name))
    tmp.unlink(missing_ok=True)
    return tmp


@contextmanager
def checkpoint_stream(path: str | Path) -> Iterator[io.BufferedWriter]:
    """Yield a binary stream to write the checkpoint ``path`` to, sequentially (``torch.save``
    does); its bytes are hashed as they pass (``_HashingFile``), and when the block ends
    normally the checksum file is written and fsynced on a thread while the checkpoint is fsynced,
    and both are put into place (``_put_in_place``). After an exception only hidden temporaries
    stay behind, which the next prune removes."""
    path = Path(path)
    tmp = _fresh_tmp(path)
    worker = _worker()
    with open(tmp, "wb", buffering=0) as file:
        hashing = _HashingFile(file, worker)
        stream = io.BufferedWriter(hashing, buffer_size=_OVERLAP_BYTES)
        yield stream
        stream.flush()
        staged = worker.submit(_stage_checksums, path, hashing.digest.hexdigest)
        try:
            os.fsync(file.fileno())
        finally:
            digest, recorded_tmp, again = staged.result()
    _put_in_place(tmp, path, digest, recorded_tmp, again)


@contextmanager
def checkpoint_file(path: str | Path) -> Iterator[Path]:
    """Yield the temporary path to write the checkpoint ``path`` to (for writers that need a path
    or seek, such as ``cstorch.save``); when the block ends normally the finished file is hashed
    and its checksum file written and fsynced on a thread (xxhash releases the GIL) while the
    checkpoint is fsynced, and both are put into place (``_put_in_place``): no partial file is
    ever visible under either name."""
    path = Path(path)
    tmp = _fresh_tmp(path)
    yield tmp
    staged = _worker().submit(_stage_checksums, path, lambda: file_digest(tmp))
    try:
        fsync_file(tmp)
    finally:
        digest, recorded_tmp, again = staged.result()
    _put_in_place(tmp, path, digest, recorded_tmp, again)


def _write_checksums(path: Path, lines: list[str]) -> Path:
    """Write and fsync the checksum file of ``path`` under its temporary name; return that name."""
    recorded = checksum_path(path)
    recorded_tmp = recorded.with_name(tmp_name(recorded.name))
    with open(recorded_tmp, "w", encoding="ascii") as handle:
        handle.write("".join(f"{digest}  {path.name}\n" for digest in lines))
        handle.flush()
        os.fsync(handle.fileno())
    return recorded_tmp


def _stage_checksums(path: Path, digest: Callable[[], str]) -> tuple[str, Path, bool]:
    """(the new file's digest, its checksum file written under a temporary name, whether a
    checkpoint is already at ``path``). When one is (the step is saved again), the staged
    checksum file lists its hash too, so that either file verifies until the rename."""
    again = path.exists()
    try:
        old = _recorded(path) if again else []
    except CheckpointError:  # the old checksum file is unreadable: nothing to keep from it
        old = []
    new = digest()
    return new, _write_checksums(path, [new] + [d for suffix, d in old if suffix == CHECKSUM_SUFFIX]), again


def _put_in_place(tmp: Path, path: Path, digest: str, staged: Path, again: bool) -> None:
    """Rename the finished, fsynced ``tmp`` over ``path`` with its staged (fsynced) checksum file
    renamed in first.

    When ``path`` existed (``again``), the staged checksum file lists the old hash too, and it
    and older kinds of checksum file are replaced only after the new checkpoint is in place: a
    kill between the renames leaves the old or the new checkpoint, either of which verifies.
    """
    os.replace(staged, checksum_path(path))
    os.replace(tmp, path)
    if again:
        os.replace(_write_checksums(path, [digest]), checksum_path(path))
        for suffix in _HASHES:
            if suffix != CHECKSUM_SUFFIX:
                checksum_path(path, suffix).unlink(missing_ok=True)
    fsync_dir(path.parent)


def _recorded(path: Path) -> list[tuple[str, str]]:
    """(suffix, hex digest) of each hash recorded for ``path`` in its checksum files.

    Raises:
        CheckpointError: a checksum file that cannot be read or parsed.
    """
    found = []
    for suffix in _HASHES:
        recorded = checksum_path(path, suffix)
        if not recorded.is_file():
            continue
        try:
            digests = [line.split()[0].lower() for line in recorded.read_text(encoding="ascii").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError):
            digests = []
        if not digests:  # an empty one (e.g. cut short by a power loss) must not read as "no checksum"
            raise CheckpointError(f"{recorded}: unreadable checksum file")
        found += [(suffix, digest) for digest in digests]
    return found


def verify_checkpoint(path: str | Path) -> bool:
    """Check the checkpoint at ``path`` against its checksum file(s); True when it was verified,
    False when there is no checksum file to verify against. The file must match one recorded
    hash (two are recorded only while a step is being saved again).

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        CheckpointError: an empty file, a mismatch or an unreadable checksum file, naming ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    recorded = _recorded(path)
    if not recorded:
        return False
    for suffix in dict.fromkeys(suffix for suffix, _ in recorded):
        if file_digest(path, suffix) in {d for s, d in recorded if s == suffix}:
            return True
    names = " / ".join(dict.fromkeys(checksum_path(path, s).name for s, _ in recorded))
    raise CheckpointError(f"{path}: corrupt: its checksum differs from the one recorded in {names}")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a hidden temporary name, hashing the bytes as they are written, fsync, then
    rename over ``path``, with its checksum file (``checkpoint_stream``).

    A crash at any point leaves either the previous file or none, never a partial one under the
    final name. torch.save's own CRC-32 of each zip record is left out (``zip_crc32``).
    """
    with checkpoint_stream(path) as stream, zip_crc32(False):
        torch.save(obj, stream)


@contextmanager
def zip_crc32(on: bool) -> Iterator[None]:
    """torch.save with (``on``) or without the CRC-32 of each record in its zip headers (written
    as zeros), where torch offers the choice (``set_crc32_options``; the Cerebras venv's 2.4
    always computes them). Checkpoints are saved without: the XXH3 checksum covers every byte of
    the file, torch.load does not check the CRCs (torch 2.4 and 2.13 read such files), and
    computing them costs 4-5 times the XXH3 (bench reliability), so they would only slow the save;
    zip tools (``unzip -t``) report the zeros as CRC errors."""
    if not hasattr(torch.serialization, "set_crc32_options"):
        yield
        return
    was = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(on)
    try:
        yield
    finally:
        torch.serialization.set_crc32_options(was)


def read_verified(path: str | Path, read: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """``read(path)`` while the file is checked against its checksum file on a thread (reading
    never runs code from the file, so it need not wait); returns the content and whether it was
    verified (False: no checksum file).

    Raises:
        CheckpointError: the checksum differs (preferred to the reader's own error), the file is
            empty, or the reader fails.
    """
    path = Path(path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        verified = pool.submit(verify_checkpoint, path)
        try:
            state = read(path)
        except (CheckpointError, FileNotFoundError):
            verified.result()  # a checksum mismatch says more than the reader's error
            raise
        return state, verified.result()


def torch_load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict (tensors and plain Python values only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a bad file
        first_line = str(err).splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {first_line})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not an EBERT checkpoint (no 'model' entry)")
    return state


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint of either backend without Cerebras packages: ``cstorch.save`` files (HDF5
    signature) through training/cstorch_format.py, anything else through ``torch_load``."""
    return from_modelzoo(read_cstorch_checkpoint(path) if is_cstorch_checkpoint(path) else torch_load(path))


def from_modelzoo(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint written by Cerebras Model Zoo's Trainer with our names for its step
    (``global_step``), data position (``dataloader``), params (``__metadata__``) and the backend
    whose optimizer layout it has (cstorch); ours unchanged."""
    if "step" in state or "global_step" not in state:
        return state
    # Model Zoo's optimizers and schedulers are cerebras.pytorch's: the cstorch backend's layout.
    state = {**state, "step": int(state["global_step"]), "backend": state.get("backend", "cstorch")}
    if isinstance(state.get("dataloader"), Mapping):
        state["data_state"] = dict(state["dataloader"])
    metadata = state.get("__metadata__")
    if isinstance(metadata, list) and metadata and isinstance(metadata[-1], Mapping):
        state.setdefault("params", metadata[-1].get("params"))
    return state


def capture_rng() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states, as tensors and plain values."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(int(v) for v in py_state["state"].tolist()), py_state["gauss_next"]))


def _few(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_model_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], strict: bool,
                       source: str | Path) -> tuple[list[str], list[str]]:
    """Load ``weights`` into ``model``; return the (missing, unexpected) keys that were allowed.

    Shape mismatches are always errors. With ``strict``, missing or unexpected keys are errors
    too; without it they are returned (e.g. a fine-tuning head missing from a pre-training
    checkpoint, and the MLM head the fine-tuning model does not have).

    Raises:
        CheckpointError: naming the file and a few of the mismatched keys.
    """
    own = model.state_dict()
    missing = sorted(k for k in own if k not in weights)
    unexpected = sorted(k for k in weights if k not in own)
    shapes = sorted(
        f"{k} {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)
    )
    if shapes:
        raise CheckpointError(f"{source}: checkpoint does not match the model, shapes differ: {_few(shapes)}")
    if not any(k in weights for k in own):
        raise CheckpointError(f"{source}: checkpoint does not match the model: no weight names in common "
                              f"(model has {_few(list(own))})")
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {_few(missing)}")
        if unexpected:
            parts.append(f"not in the model: {_few(unexpected)}")
        raise CheckpointError(
            f"{source}: checkpoint does not match the model ({'; '.join(parts)}); "
            "use --disable_strict_checkpoint_loading to load the weights that match (e.g. to fine-tune)"
        )
    model.load_state_dict(dict(weights), strict=False)
    return missing, unexpected
