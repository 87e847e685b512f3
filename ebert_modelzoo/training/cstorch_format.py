"""Reading ``cstorch.save`` checkpoints (what the cstorch backend writes) with h5py, numpy and
torch only, so the plain torch backend can evaluate or fine-tune from them.

The format, as cerebras-pytorch 2.10 writes it (file attribute ``__version__`` 0.5):

- ``attrs["__SUCCESS__"]`` is true once the file is complete.
- ``attrs["__spec__"]`` is a JSON list whose second item is torch's pytree spec of the saved
  object (``treespec_dumps``): nested ``builtins.dict`` / ``collections.OrderedDict`` (keys in
  ``context``, itself JSON), ``builtins.list`` / ``builtins.tuple`` and leaves (``type`` null).
- Each leaf is named by its path joined with dots (``model.ebert.layers.0.attention.qkv.bias``,
  ``optimizer.state.3.exp_avg``; dict keys may contain dots themselves, hence the spec).
  ``attrs["<name>.__metadata__"]`` is JSON whose ``"<name>.__metadata__"`` entry has a
  ``__TYPE__``: ``TorchTensorSerializer`` (the tensor is the dataset ``<name>``, its torch dtype
  in ``dtypes``), ``ScalarSerializer`` (``scalar_value``: int, float or bool),
  ``StringSerializer`` (``string_value``), ``NoneSerializer``, or ``LinkedObject`` (``key``:
  the same Python object was saved earlier under that name, e.g. small ints and None).
- Tensor datasets are chunked and compressed with the HDF5 LZ4 filter (id 32004, which h5py
  reads only with the hdf5plugin package); their chunks are read raw and decoded here.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ebert_modelzoo.errors import CheckpointError

_TORCH_DTYPES = {
    f"torch.{name}": getattr(torch, name)
    for name in ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                 "uint8", "bool")
}


def is_cstorch_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is an HDF5 file (the signature ``cstorch.save`` files start with)."""
    path = Path(path)
    return path.is_file() and h5py.is_hdf5(path)


def read_cstorch_checkpoint(path: str | Path) -> dict[str, Any]:
    """The object a ``cstorch.save`` file holds, as nested dicts/lists of CPU tensors and plain
    values (the shape of the trainer's checkpoint state).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: not a (complete) cstorch checkpoint, or a value this reader cannot
            decode; the message names the file and the entry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with h5py.File(path, "r") as handle:
            return _Reader(handle, path).read()
    except CheckpointError:
        raise
    except (OSError, ValueError, IndexError, KeyError, struct.error) as err:  # h5py, json, corrupt chunks
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"{path}: not a readable cstorch checkpoint ({type(err).__name__}: {first_line})") from None


class _Reader:
    def __init__(self, handle: h5py.File, path: Path) -> None:
        self.handle = handle
        self.path = path

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {what}")

    def read(self) -> dict[str, Any]:
        attrs = self.handle.attrs
        if "__spec__" not in attrs:
            raise self.fail("an HDF5 file but not a cstorch checkpoint (no __spec__ attribute)")
        if not bool(attrs.get("__SUCCESS__", False)):
            raise self.fail("incomplete cstorch checkpoint (__SUCCESS__ is not set: the save was interrupted)")
        try:
            _, treespec = json.loads(json.loads(attrs["__spec__"])[1])
        except (ValueError, TypeError, IndexError) as err:
            raise self.fail(f"unreadable cstorch __spec__ attribute ({err})") from None
        state = self.build(treespec, "")
        if not isinstance(state, dict) or "model" not in state:
            raise CheckpointError(f"{self.path}: not an EBERT checkpoint (no 'model' entry)")
        return state

    def build(self, spec: dict[str, Any], name: str) -> Any:
        kind, children = spec.get("type"), spec.get("children_spec", [])
        if kind is None:
            return self.leaf(name)
        if kind in ("builtins.dict", "collections.OrderedDict"):
            keys = json.loads(spec["context"])
            return {key: self.build(child, _join(name, key)) for key, child in zip(keys, children)}
        if kind in ("builtins.list", "builtins.tuple"):
            items = [self.build(child, _join(name, i)) for i, child in enumerate(children)]
            return items if kind == "builtins.list" else tuple(items)
        raise self.fail(f"entry {name or '<root>'!r} is a {kind}, which this reader cannot decode")

    def metadata(self, name: str) -> dict[str, Any]:
        attr = f"{name}.__metadata__"
        if attr not in self.handle.attrs:
            raise self.fail(f"entry {name!r} has no {attr} attribute")
        return json.loads(self.handle.attrs[attr])[attr]

    def leaf(self, name: str, seen: tuple[str, ...] = ()) -> Any:
        meta = self.metadata(name)
        kind = meta.get("__TYPE__")
        if kind == "TorchTensorSerializer":
            return self.tensor(name, meta)
        if kind == "ScalarSerializer":
            return meta["scalar_value"]
        if kind == "StringSerializer":
            return meta["string_value"]
        if kind == "NoneSerializer":
            return None
        if kind == "LinkedObject":
            target = meta["key"]
            if target in seen:
                raise self.fail(f"entry {name!r}: circular links ({' -> '.join(seen)})")
            return self.leaf(target, (*seen, name))
        raise self.fail(f"entry {name!r} is stored by {kind}, which this reader cannot decode")

    def tensor(self, name: str, meta: dict[str, Any]) -> torch.Tensor:
        if meta.get("compressed"):
            raise self.fail(f"entry {name!r} is a compressed tensor, which this reader cannot decode")
        if name not in self.handle or not isinstance(self.handle[name], h5py.Dataset):
            raise self.fail(f"tensor {name!r} has no dataset")
        dtype_name = (meta.get("dtypes") or ["?"])[0]
        dtype = _TORCH_DTYPES.get(dtype_name)
        if dtype is None:
            raise self.fail(f"tensor {name!r} has dtype {dtype_name}, which this reader cannot decode")
        values = _read_dataset(self.handle[name], self.fail)
        shape = tuple((meta.get("shapes") or [values.shape])[0])
        if values.shape != shape:
            raise self.fail(f"tensor {name!r} has shape {values.shape}, its metadata says {shape}")
        if dtype == torch.bfloat16 and values.dtype.itemsize == 2 and values.dtype.kind in "iuV":
            # numpy has no bfloat16: the 16-bit patterns are stored as a 2-byte integer type.
            return torch.from_numpy(values.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(values).to(dtype)


LZ4_FILTER = 32004


def _read_dataset(dataset: h5py.Dataset, fail: Any) -> np.ndarray:
    """The dataset's values, decoding LZ4-filtered chunks without an HDF5 plugin."""
    plist = dataset.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if not filters:
        # np.array copies into a contiguous array and keeps 0-d scalars 0-d.
        return np.array(dataset[()])
    if filters != [LZ4_FILTER]:
        raise fail(f"tensor {dataset.name.lstrip('/')!r} uses HDF5 filters {filters}, which this reader cannot decode")
    out = np.empty(dataset.shape, dtype=dataset.dtype)
    chunk_shape = dataset.chunks
    for index in range(dataset.id.get_num_chunks()):
        offset = dataset.id.get_chunk_info(index).chunk_offset
        filter_mask, raw = dataset.id.read_direct_chunk(offset)
        data = raw if filter_mask & 1 else _lz4_filter_decode(raw)
        chunk = np.frombuffer(data, dtype=dataset.dtype).reshape(chunk_shape)
        # Edge chunks are stored whole; keep the part inside the dataset.
        target = tuple(slice(start, min(start + size, full)) for start, size, full in zip(offset, chunk_shape, dataset.shape))
        out[target] = chunk[tuple(slice(0, t.stop - t.start) for t in target)]
    return out


def _lz4_filter_decode(raw: bytes) -> bytes:
    """Undo the HDF5 LZ4 filter: an 8-byte big-endian total size and a 4-byte block size, then per
    block a 4-byte big-endian compressed size and the LZ4 block (stored as is when it did not
    shrink)."""
    total, block_size = struct.unpack_from(">qi", raw, 0)
    pos, out = 12, bytearray()
    while len(out) < total:
        expected = min(block_size, total - len(out))
        (size,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        block = raw[pos:pos + size]
        pos += size
        out += block if size == expected else _lz4_block_decode(block, expected)
    return bytes(out)


def _lz4_length(src: bytes, pos: int, length: int) -> tuple[int, int]:
    """A token's 4-bit ``length``, extended by the bytes at ``pos`` when it is 15 (each 255 says
    another byte follows); returns the length and the position after it."""
    if length == 15:
        while True:
            extra = src[pos]
            pos += 1
            length += extra
            if extra != 255:
                break
    return length, pos


def _lz4_block_decode(src: bytes, expected: int) -> bytearray:
    """One LZ4 block (the LZ4 block format: sequences of literals and back-references)."""
    out = bytearray()
    pos, end = 0, len(src)
    while pos < end:
        token = src[pos]
        length, pos = _lz4_length(src, pos + 1, token >> 4)
        out += src[pos:pos + length]
        pos += length
        if pos >= end:
            break  # the last sequence has literals only
        back = src[pos] | (src[pos + 1] << 8)
        length, pos = _lz4_length(src, pos + 2, token & 15)
        length += 4
        start = len(out) - back
        if back <= 0 or start < 0:
            raise ValueError("corrupt LZ4 block (back-reference before the start)")
        if back >= length:
            out += out[start:start + length]
        else:  # overlapping copy repeats the last ``back`` bytes
            pattern = out[start:]
            out += (pattern * (length // back + 1))[:length]
    if len(out) != expected:
        raise ValueError(f"corrupt LZ4 block ({len(out)} bytes decoded, {expected} expected)")
    return out


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)
