"""Checkpoints: round trip, atomic write under a crash, safe load, corrupt files, config check, RNG state."""

from __future__ import annotations

import dataclasses
import errno
import functools
import io
import os
import pickle
import random
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import checkpoint
from course_utils.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
    load_checkpoint,
    prepare_checkpoint_dir,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    latent_dim: int = 100
    lr_g: float = 2e-4
    image_size: int = 28
    betas: tuple[float, float] = (0.5, 0.999)


def _model_and_optimizer(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return model, torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.5, 0.999))


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=generator)  # (16, 4)
    loss = model(x).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _state(model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "history": [1.5, 0.7],
    }


def test_round_trip_restores_model_and_optimizer(tmp_path) -> None:
    model, optimizer = _model_and_optimizer(seed=0)
    for step in range(3):
        _train_step(model, optimizer, seed=step)
    path = save_checkpoint(tmp_path / "run" / "last.pt", _state(model, optimizer, epoch=3), RunConfig())
    assert path == tmp_path / "run" / "last.pt" and path.is_file()

    fresh_model, fresh_optimizer = _model_and_optimizer(seed=123)  # different initial weights
    assert not torch.equal(fresh_model[0].weight, model[0].weight)
    loaded = load_checkpoint(path, expected_config=RunConfig())
    fresh_model.load_state_dict(loaded["model"])
    fresh_optimizer.load_state_dict(loaded["optimizer"])
    assert loaded["epoch"] == 3 and loaded["history"] == [1.5, 0.7]
    assert loaded["config"] == dataclasses.asdict(RunConfig())
    for original, restored in zip(model.parameters(), fresh_model.parameters(), strict=True):
        assert torch.equal(original, restored)

    # the optimizer's moments came back too: one more identical step keeps both models identical
    _train_step(model, optimizer, seed=99)
    _train_step(fresh_model, fresh_optimizer, seed=99)
    for original, restored in zip(model.parameters(), fresh_model.parameters(), strict=True):
        assert torch.equal(original, restored)


def test_saved_file_loads_with_plain_weights_only_torch_load(tmp_path) -> None:
    model, optimizer = _model_and_optimizer(seed=0)
    path = save_checkpoint(tmp_path / "c.pt", {**_state(model, optimizer, 0), "rng": rng_state()}, {"a": 1})
    payload = torch.load(path, weights_only=True)
    assert payload["config"] == {"a": 1}


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch, failure) -> None:
    expected = KeyboardInterrupt if isinstance(failure, KeyboardInterrupt) else CheckpointError  # Ctrl-C unchanged
    path = tmp_path / "last.pt"
    model, optimizer = _model_and_optimizer(seed=0)
    save_checkpoint(path, _state(model, optimizer, epoch=1), RunConfig())
    old_weight = model[0].weight.detach().clone()

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then the save dies
        raise failure

    monkeypatch.setattr(checkpoint.torch, "save", crashing_save)
    _train_step(model, optimizer, seed=5)
    with pytest.raises(expected) as info:
        save_checkpoint(path, _state(model, optimizer, epoch=2), RunConfig())
    assert type(info.value) is expected
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ["last.pt"], "the temp file must be removed"
    loaded = load_checkpoint(path, expected_config=RunConfig())
    assert loaded["epoch"] == 1
    assert torch.equal(loaded["model"]["0.weight"], old_weight)


def test_crash_on_first_save_leaves_no_file(tmp_path, monkeypatch) -> None:
    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"junk")
        raise OSError("no space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", crashing_save)
    with pytest.raises(CheckpointError, match="no space") as info:
        save_checkpoint(tmp_path / "ckpt" / "last.pt", {"epoch": 0}, {})
    assert os.listdir(tmp_path / "ckpt") == []
    assert "no checkpoint existed" in str(info.value).lower()


_DISK_FULL = [
    RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"),  # torch's zip writer
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
]


@pytest.mark.parametrize("failure", _DISK_FULL, ids=["torch-writer", "ENOSPC", "EDQUOT"])
def test_full_disk_while_saving_keeps_previous_file_and_says_how_much_is_free(tmp_path, monkeypatch, failure) -> None:
    path = tmp_path / "last.pt"
    model, optimizer = _model_and_optimizer(seed=0)
    save_checkpoint(path, _state(model, optimizer, epoch=1), RunConfig())
    before = path.read_bytes()

    def full_disk_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 the first few bytes")  # the disk fills up part-way through the write
        raise failure

    monkeypatch.setattr(checkpoint.torch, "save", full_disk_save)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, _state(model, optimizer, epoch=2), RunConfig())
    monkeypatch.undo()

    message = str(info.value)
    assert info.value.__cause__ is failure  # the original error stays attached
    assert path.read_bytes() == before, "the previous checkpoint must be unchanged"
    assert sorted(os.listdir(tmp_path)) == ["last.pt"], "the temp file must be removed"
    assert str(path) in message
    assert "full" in message
    assert re.search(r"\d+(\.\d+)? [MG]B free", message), message  # shutil.disk_usage of the folder
    assert "intact and unchanged" in message
    assert "free up space" in message and "COURSE_CHECKPOINT_DIR" in message and "another disk" in message
    assert load_checkpoint(path)["epoch"] == 1


# ----------------------------------------------------------------------------- checkpoint folder


def test_prepare_checkpoint_dir_creates_the_folder_and_leaves_it_empty(tmp_path) -> None:
    folder = tmp_path / "runs" / "02_dcgan"
    assert prepare_checkpoint_dir(str(folder)) == folder
    assert folder.is_dir() and os.listdir(folder) == []  # the write probe was deleted
    assert prepare_checkpoint_dir(folder) == folder  # an existing folder is fine


@pytest.mark.parametrize("where", ["folder-is-a-file", "parent-is-a-file"])
def test_prepare_checkpoint_dir_rejects_a_file(tmp_path, where) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    folder = blocker if where == "folder-is-a-file" else blocker / "checkpoints"
    with pytest.raises(CheckpointError) as info:
        prepare_checkpoint_dir(folder)
    message = str(info.value)
    assert str(folder) in message
    assert f"{blocker} is a file" in message
    assert "another folder" in message and "COURSE_CHECKPOINT_DIR" in message
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("failure", "words"),
    [(PermissionError(errno.EACCES, "Permission denied"), "not writable"),
     (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
     (OSError(errno.EIO, "Input/output error"), "Input/output error")],
    ids=["read-only-folder", "read-only-file-system", "other-os-error"],
)
def test_prepare_checkpoint_dir_rejects_an_unwritable_folder(tmp_path, monkeypatch, failure, words) -> None:
    # Tests run as root, for whom chmod 0o555 does not stop writes: make the probe's open fail instead.
    def failing_open(file, mode="r", *args, **kwargs):
        raise type(failure)(failure.errno, failure.strerror, str(file))

    monkeypatch.setattr(checkpoint, "open", failing_open, raising=False)  # shadows the builtin in the module only
    folder = tmp_path / "shared"
    with pytest.raises(CheckpointError) as info:
        prepare_checkpoint_dir(folder)
    message = str(info.value)
    assert str(folder) in message and words in message
    assert "another folder" in message and "COURSE_CHECKPOINT_DIR" in message
    assert isinstance(info.value.__cause__, OSError)


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_prepare_checkpoint_dir_removes_only_temp_files_of_dead_processes(tmp_path, monkeypatch) -> None:
    dead, foreign = _dead_pid(), _dead_pid()
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        if pid == foreign:  # a live process of another user: signalling it is not permitted
            raise PermissionError(errno.EPERM, "Operation not permitted")
        real_kill(pid, sig)

    monkeypatch.setattr(checkpoint.os, "kill", kill)
    stale = [f".last.pt.tmp-{dead}-0a1b2c3d", f".epoch_003.pt.tmp-{dead}-ffff0000"]
    kept = [
        "last.pt",
        "notes.txt",
        f".last.pt.tmp-{os.getpid()}-12345678",  # this process may be writing it right now
        f".last.pt.tmp-{os.getppid()}-87654321",  # alive
        f".last.pt.tmp-{foreign}-deadbeef",  # PermissionError: alive
        ".last.pt.tmp-notapid-00000000",
        f"last.pt.tmp-{dead}-0a1b2c3d",  # no leading dot: not a save_checkpoint temp name
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    (tmp_path / f".dir.pt.tmp-{dead}-0a1b2c3d").mkdir()  # folders are never removed
    prepare_checkpoint_dir(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, f".dir.pt.tmp-{dead}-0a1b2c3d"])


def test_save_checkpoint_temp_names_match_what_prepare_checkpoint_dir_cleans(tmp_path, monkeypatch) -> None:
    names = []

    def crashing_save(obj, f, *args, **kwargs):
        names.append(os.path.basename(f.name))
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last.pt", {"epoch": 0}, {})
    assert checkpoint._TEMP_NAME.fullmatch(names[0]) and f"-{os.getpid()}-" in names[0]


class _Exploit:
    """A pickle payload that runs a shell command when unpickled (harmless: it creates a marker file)."""

    def __init__(self, marker) -> None:
        self.command = f"echo pwned > {shlex.quote(str(marker))}"

    def __reduce__(self):
        return (os.system, (self.command,))


def test_exploit_fixture_really_runs_code_when_unpickled(tmp_path) -> None:
    # Guards the next test: the payload is live, so "marker absent" there means the loader refused it.
    marker = tmp_path / "pwned.txt"
    pickle.loads(pickle.dumps({"weights": _Exploit(marker)}))
    assert marker.read_text().strip() == "pwned"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["pickle.dumps", "torch.save"])
def test_refuses_malicious_pickle(tmp_path, writer) -> None:
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    payload = {"model": {"weight": torch.zeros(2)}, "config": {}, "extra": _Exploit(marker)}
    if writer == "pickle.dumps":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)

    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert not marker.exists(), "the command inside the pickle must not run"
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, RuntimeError)
    assert str(path) in message
    assert "refused to unpickle" in message
    assert "system" in message  # names the function the file asks to call
    assert "security risk" in message and "run commands" in message
    assert "save_checkpoint" in message  # what to do instead


@pytest.mark.parametrize("keep", [0, 40, 0.5, -1], ids=["empty", "40-bytes", "half", "minus-1-byte"])
def test_truncated_checkpoint_is_a_checkpoint_error_naming_the_file(tmp_path, keep) -> None:
    model, optimizer = _model_and_optimizer(seed=0)
    path = save_checkpoint(tmp_path / "epoch_007.pt", _state(model, optimizer, 7), RunConfig())
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert "epoch_007.pt" in str(info.value)
    assert "truncated or corrupted" in str(info.value)


def test_missing_checkpoint_is_a_file_not_found_error(tmp_path) -> None:
    path = tmp_path / "nowhere" / "last.pt"
    with pytest.raises(FileNotFoundError) as info:
        load_checkpoint(path)
    assert isinstance(info.value, CheckpointError)
    assert str(path) in str(info.value)
    assert info.value.filename == str(path)


def test_config_mismatch_names_each_key_with_both_values(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "last.pt", {"epoch": 1}, RunConfig(latent_dim=100, lr_g=2e-4))
    expected = RunConfig(latent_dim=64, lr_g=2e-4, image_size=64)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(path, expected_config=expected)
    message = str(info.value)
    assert "latent_dim: stored 100, expected 64" in message
    assert "image_size: stored 28, expected 64" in message
    assert "lr_g" not in message  # equal settings are not listed
    assert "fresh run in another folder" in message
    assert info.value.differences == [("image_size", 28, 64), ("latent_dim", 100, 64)]


def test_config_check_passes_for_equal_settings_given_as_dict_or_dataclass(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "last.pt", {"epoch": 1}, RunConfig())
    load_checkpoint(path, expected_config=RunConfig())
    as_dict = dataclasses.asdict(RunConfig())
    as_dict["betas"] = list(as_dict["betas"])  # a list equals the tuple with the same items
    load_checkpoint(path, expected_config=as_dict)


def test_config_check_reports_added_and_missing_keys(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "last.pt", {"epoch": 1}, {"latent_dim": 100, "old_flag": True})
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(path, expected_config={"latent_dim": 100, "new_flag": 3})
    assert "new_flag: stored '<missing>', expected 3" in str(info.value)
    assert "old_flag: stored True, expected '<missing>'" in str(info.value)


def test_checkpoint_without_stored_config_fails_the_config_check(tmp_path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"model": {"w": torch.ones(1)}}, path)
    assert load_checkpoint(path)["model"]["w"].item() == 1.0
    with pytest.raises(CheckpointMismatchError, match="no stored settings"):
        load_checkpoint(path, expected_config=RunConfig())


def test_save_refuses_values_that_weights_only_load_would_reject(tmp_path) -> None:
    path = tmp_path / "last.pt"
    with pytest.raises(TypeError, match=r"state\['history'\]\[1\] is a numpy.float64"):
        save_checkpoint(path, {"history": [1.0, np.float64(0.5)]}, {})
    with pytest.raises(TypeError, match="config"):
        save_checkpoint(path, {"epoch": 1}, {"callback": print})
    with pytest.raises(TypeError, match="dataclass instance or a dict"):
        save_checkpoint(path, {"epoch": 1}, "latent_dim=100")
    with pytest.raises(ValueError, match="reserves"):
        save_checkpoint(path, {"config": {}}, {})
    assert not path.exists() and os.listdir(tmp_path) == []


def _draw() -> tuple[list[float], list[float], torch.Tensor]:
    """Numbers from Python's `random`, NumPy's global RNG and torch's CPU RNG."""
    python = [random.random(), random.gauss(0.0, 1.0), random.randint(0, 10**9)]
    numpy = [float(np.random.rand()), float(np.random.standard_normal()), float(np.random.randint(10**9))]
    return python, numpy, torch.cat([torch.rand(3), torch.randn(3)])


def _assert_same_draws(first, second) -> None:
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert torch.equal(first[2], second[2])


def test_rng_state_restores_python_numpy_and_torch() -> None:
    _draw()  # odd numbers of Gaussian draws: the cached second Gaussian is part of the state
    state = rng_state()
    assert state["python"]["gauss_next"] is not None and state["numpy"]["has_gauss"] == 1
    first = _draw()
    set_rng_state(state)
    second = _draw()
    _assert_same_draws(first, second)
    assert _draw()[0] != first[0]  # sanity: the generators moved on


def test_rng_state_survives_a_checkpoint_round_trip(tmp_path) -> None:
    _draw()
    path = save_checkpoint(tmp_path / "last.pt", {"rng": rng_state()}, {})
    first = _draw()
    _draw()  # move further away
    set_rng_state(load_checkpoint(path)["rng"])
    _assert_same_draws(first, _draw())


def test_rng_state_is_weights_only_safe() -> None:
    buffer = io.BytesIO()
    torch.save(rng_state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert isinstance(state["torch"], torch.Tensor)
    assert state["numpy"]["key"].shape == (624,)


def test_set_rng_state_rejects_an_incomplete_state() -> None:
    with pytest.raises(ValueError, match="missing numpy"):
        set_rng_state({"torch": torch.get_rng_state(), "cuda": [], "python": {}})


# ----------------------------------------------------------------------------- cached_result


def test_cached_result_computes_once_per_settings_and_recomputes_what_it_cannot_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.delenv("COURSE_REQUIRE_TRAINED", raising=False)
    calls = []

    def compute(value: float):
        def run():
            calls.append(value)
            return {"accuracy": torch.tensor([value, 0.5]), "rows": {"a": [value, 1.0]}}
        return run

    path = tmp_path / "07_test_shortcut_smoke" / "shortcut.pt"
    settings = {"segmenter": "abc", "steps": 3}
    first, loaded = checkpoint.cached_result(path, settings, compute(0.75))
    assert not loaded and calls == [0.75] and path.is_file()
    again, loaded = checkpoint.cached_result(path, settings, compute(0.1))
    assert loaded and calls == [0.75]  # not computed again
    assert torch.equal(again["accuracy"], first["accuracy"]) and again["rows"] == {"a": [0.75, 1.0]}
    assert "config" not in again
    # other settings (another segmenter's weights): recomputed, said, and the file now holds the new result
    other, loaded = checkpoint.cached_result(path, {"segmenter": "xyz", "steps": 3}, compute(0.2))
    assert not loaded and calls == [0.75, 0.2] and "other segmenter" in capsys.readouterr().out
    assert checkpoint.cached_result(path, {"segmenter": "xyz", "steps": 3}, compute(0.3))[0]["rows"]["a"][0] == 0.2
    # a damaged file is never used
    path.write_bytes(path.read_bytes()[:50])
    _, loaded = checkpoint.cached_result(path, {"segmenter": "xyz", "steps": 3}, compute(0.4))
    assert not loaded and calls[-1] == 0.4 and "computing it again" in capsys.readouterr().out
    # a bundle run computes nothing: a missing result under the checkpoint root is refused
    monkeypatch.setenv("COURSE_REQUIRE_TRAINED", "1")
    with pytest.raises(checkpoint.UntrainedRunError, match="no cached result"):
        checkpoint.cached_result(tmp_path / "07_other_smoke" / "shortcut.pt", settings, compute(0.5))
    assert checkpoint.cached_result(path, {"segmenter": "xyz", "steps": 3}, compute(0.6))[1]  # loads still work


def test_cached_result_recompute_ignores_the_cache_and_overwrites_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.delenv("COURSE_REQUIRE_TRAINED", raising=False)
    path = tmp_path / "01_toy_smoke" / "run.pt"
    assert checkpoint.cached_result(path, {"steps": 3}, lambda: {"value": 1.0}) == ({"value": 1.0}, False)
    assert checkpoint.cached_result(path, {"steps": 3}, lambda: {"value": 2.0}, recompute=True) == (
        {"value": 2.0}, False)
    assert checkpoint.cached_result(path, {"steps": 3}, lambda: {"value": 3.0}) == ({"value": 2.0}, True)
    monkeypatch.setenv("COURSE_REQUIRE_TRAINED", "1")  # a bundle run that asks to retrain is refused
    with pytest.raises(checkpoint.UntrainedRunError):
        checkpoint.cached_result(path, {"steps": 3}, lambda: {"value": 4.0}, recompute=True)


def _defined(source: str):
    # a function built from source text, as an edited notebook cell would define it (no source file: bytecode)
    namespace: dict = {}
    exec(compile(source, "<cell>", "exec"), namespace)
    return namespace["step"]


def test_code_digest_names_the_code_so_an_edited_function_is_recomputed():
    def loss(x):
        return x * 2

    def other(x):
        return x * 2

    assert checkpoint.code_digest(loss) == checkpoint.code_digest(loss)
    assert checkpoint.code_digest(loss) != checkpoint.code_digest(other)  # its name is part of the code
    assert checkpoint.code_digest(loss, other) != checkpoint.code_digest(other, loss)
    # without a source file the bytecode stands in: stable for the same text, different after an edit,
    # nested functions included (their addresses and line numbers are not part of it)
    original = "def step(x):\n    def inner(y):\n        return y + 1\n    return inner(x) * 2\n"
    assert checkpoint.code_digest(_defined(original)) == checkpoint.code_digest(_defined("\n\n" + original))
    assert checkpoint.code_digest(_defined(original)) != checkpoint.code_digest(
        _defined(original.replace("y + 1", "y + 2")))
    assert checkpoint.code_digest(_defined(original)) != checkpoint.code_digest(
        _defined(original.replace("* 2", "* 3")))
    with pytest.raises(TypeError, match="takes functions"):
        checkpoint.code_digest("train_toy_gan")
    with pytest.raises(TypeError, match="partial"):
        checkpoint.code_digest(functools.partial(loss, 1))
    # a default value is part of the code; a decorator is not (the decorated function is what runs)
    assert checkpoint.code_digest(_defined("def step(x=1):\n    return x\n")) != checkpoint.code_digest(
        _defined("def step(x=2):\n    return x\n"))
    assert checkpoint.code_digest(torch.no_grad()(loss)) == checkpoint.code_digest(loss)


def test_code_digest_is_the_same_in_another_process_and_for_a_cell_run_again(tmp_path):
    # a notebook kernel keeps each cell's text under a new file name: the same text is the same digest, and so
    # is bytecode with a set constant (its repr's order follows the string hash seed) in another process
    program = (
        "import linecache, sys\n"
        "from course_utils.checkpoint import code_digest\n"
        "cell = 'def step(x):\\n    return x in {\"alpha\", \"beta\", \"gamma\", \"delta\"}\\n'\n"
        "digests = []\n"
        "for name in ('<cell-1>', '/tmp/ipykernel_1/2.py'):\n"
        "    linecache.cache[name] = (len(cell), None, cell.splitlines(True), name)\n"
        "    namespace = {}\n"
        "    exec(compile(cell, name, 'exec'), namespace)\n"
        "    digests.append(code_digest(namespace['step']))\n"
        "plain = {}\n"
        "exec(compile(cell, '<no source>', 'exec'), plain)\n"
        "print(digests[0] == digests[1], code_digest(plain['step']))\n"
    )
    outputs = set()
    for hash_seed in ("1", "2", "3"):
        result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                                env={**os.environ, "PYTHONHASHSEED": hash_seed})
        same_for_both_names, fallback = result.stdout.split()
        assert same_for_both_names == "True"
        outputs.add(fallback)
    assert len(outputs) == 1, "the bytecode digest depends on the hash seed"
