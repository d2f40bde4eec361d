"""Save envelope, device check and progress switch: every failure names the file or argument."""

from __future__ import annotations

import io
import os
import sys

import pytest
import torch

import sciml
from sciml.io import SaveFileError, load_module_state, load_state, reading, save_state
from sciml.progress import check_progress, progress_bar, resolve_progress
from sciml.validation import DeviceUnavailableError, check_device, check_positive


def _saved(tmp_path, version: int = 2) -> str:
    path = str(tmp_path / "obj.pt")
    save_state(path, "demo.Thing", version, {"x": torch.arange(3.0), "eps": 0.5})
    return path


def test_round_trip(tmp_path):
    version, payload = load_state(_saved(tmp_path), "demo.Thing", [1, 2])
    assert version == 2 and payload["eps"] == 0.5 and torch.equal(payload["x"], torch.arange(3.0))
    assert "format" not in payload


def _truncated(path: str) -> None:
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _random_bytes(path: str) -> None:
    open(path, "wb").write(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                         dtype=torch.uint8).numpy().tobytes())


def _empty(path: str) -> None:
    open(path, "wb").close()


def _foreign_dict(path: str) -> None:
    torch.save({"weights": torch.ones(2)}, path)


def _foreign_tensor(path: str) -> None:
    torch.save(torch.ones(2), path)


def _pickled_object(path: str) -> None:
    torch.save({"format": "sciml.demo.Thing/2", "obj": io.StringIO("x")}, path)  # not weights-only safe


def _other_kind(path: str) -> None:
    save_state(path, "other.Kind", 2, {})


def _newer(path: str) -> None:
    save_state(path, "demo.Thing", 9, {})


def _bad_tag(path: str) -> None:
    torch.save({"format": 2}, path)


@pytest.mark.parametrize("damage, message", [
    (_truncated, "could not be read as a torch file"),
    (_random_bytes, "could not be read as a torch file"),
    (_empty, "is empty"),
    (_foreign_dict, "not a sciml save file"),
    (_foreign_tensor, "not a sciml save file"),
    (_bad_tag, "not a sciml save file"),
    (_pickled_object, "could not be read as a torch file"),
    (_other_kind, "holds a saved other.Kind, not a demo.Thing"),
    (_newer, r"version 9; this sciml reads versions \[1, 2\] \(written by a newer sciml"),
])
def test_damaged_files_name_the_file(tmp_path, damage, message):
    path = _saved(tmp_path)
    damage(path)
    with pytest.raises(SaveFileError, match=message) as info:
        load_state(path, "demo.Thing", [1, 2])
    assert repr(path) in str(info.value)


def test_changed_bytes_fail_the_checksum(tmp_path):
    path = str(tmp_path / "w.pt")
    save_state(path, "demo.Thing", 1, {"w": torch.linspace(0, 1, 4096, dtype=torch.float64)})
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2  # inside the 32 kB of tensor data: the zip stays readable, the values change
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    open(path, "wb").write(bytes(data))
    with pytest.raises(SaveFileError, match="is corrupted: the bytes of its entry .* do not match the checksum"):
        load_state(path, "demo.Thing", [1])


def test_load_module_state_checks_the_weights():
    lin = torch.nn.Linear(2, 3)
    good = {k: v.clone() for k, v in lin.state_dict().items()}
    load_module_state(lin, good)
    with pytest.raises(ValueError, match=r"weight 'bias' has 1 non-finite entry"):
        load_module_state(lin, {**good, "bias": torch.tensor([0.0, float("nan"), 0.0])})
    with pytest.raises(ValueError, match="the weights do not fit the model: .*size mismatch"):
        load_module_state(lin, {**good, "weight": torch.zeros(3, 5)})
    with pytest.raises(ValueError, match="the weights do not fit the model: .*Missing key"):
        load_module_state(lin, {"weight": good["weight"]})
    with pytest.raises(TypeError, match="weight 'bias' must be a torch.Tensor, got list"):
        load_module_state(lin, {**good, "bias": [0.0, 0.0, 0.0]})
    with pytest.raises(TypeError, match="the weights must be a dict of tensors, got str"):
        load_module_state(lin, "weights")
    with pytest.raises(SaveFileError, match="'f.pt' holds invalid content: the weights do not fit"):
        with reading("f.pt"):
            load_module_state(lin, {"weight": good["weight"]})


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_state(tmp_path / "nope.pt", "demo.Thing", [1])
    with pytest.raises(SaveFileError, match="is a directory"):
        load_state(tmp_path, "demo.Thing", [1])
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        load_state(123, "demo.Thing", [1])
    with pytest.raises(TypeError, match="map_location must be a device, a str, a dict or a callable, got int"):
        load_state(_saved(tmp_path), "demo.Thing", [2], map_location=3)
    if not torch.cuda.is_available():  # the device is checked before the file is read
        with pytest.raises(DeviceUnavailableError, match="map_location='cuda'"):
            load_state(tmp_path / "nope.pt", "demo.Thing", [1], map_location="cuda")


def test_save_state_rejects_bad_tags(tmp_path):
    with pytest.raises(ValueError, match="kind must be a dotted name"):
        save_state(tmp_path / "a.pt", "bad kind", 1, {})
    with pytest.raises(TypeError, match="version an int, got str, float"):
        save_state(tmp_path / "a.pt", "demo.Thing", 1.5, {})
    with pytest.raises(ValueError, match="version an int >= 1"):
        save_state(tmp_path / "a.pt", "demo.Thing", 0, {})
    with pytest.raises(ValueError, match="must not hold the key 'format'"):
        save_state(tmp_path / "a.pt", "demo.Thing", 1, {"format": 1})
    assert not os.path.exists(tmp_path / "a.pt")
    with pytest.raises(IsADirectoryError, match="is a directory, not a file to write"):
        save_state(tmp_path, "demo.Thing", 1, {})
    with pytest.raises(FileNotFoundError, match="the folder .* does not exist"):
        save_state(tmp_path / "missing" / "a.pt", "demo.Thing", 1, {})
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got NoneType"):
        save_state(None, "demo.Thing", 1, {})


def test_reading_names_the_file():
    with pytest.raises(SaveFileError, match=r"'f.pt' is missing the entry 'eps'") as info:
        with reading("f.pt"):
            {}["eps"]
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(SaveFileError, match=r"'f.pt' holds invalid content: eps must be > 0, got -1.0"):
        with reading("f.pt"):
            check_positive("eps", -1.0)
    assert issubclass(SaveFileError, ValueError) and sciml.SaveFileError is SaveFileError


def test_check_device():
    assert check_device("device", None) is None
    assert check_device("device", "cpu") == torch.device("cpu")
    assert check_device("device", torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(TypeError, match="device must be None, a str or a torch.device, got int"):
        check_device("device", 0)
    with pytest.raises(ValueError, match="device='gpu0' is not a device torch knows"):
        check_device("device", "gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="device='cuda' was asked for"):
            check_device("device", "cuda")
    else:
        n = torch.cuda.device_count()
        with pytest.raises(DeviceUnavailableError, match=f"only {n} CUDA device"):
            check_device("device", f"cuda:{n}")


def test_progress_switch(monkeypatch):
    assert resolve_progress(True) is True and resolve_progress(False) is False
    with pytest.raises(TypeError, match="progress must be a bool or None, got int"):
        resolve_progress(1)
    assert check_progress(None) is None and check_progress(False) is False
    with pytest.raises(TypeError, match="progress must be a bool or None, got str"):
        check_progress("yes")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: quiet by default
    assert resolve_progress(None) is False
    bar = progress_bar(range(3), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2]

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert resolve_progress(None) is True
    with progress_bar(total=2, desc="shown", mininterval=0) as bar:
        bar.update(2)
    assert "shown" in sys.stderr.getvalue()
