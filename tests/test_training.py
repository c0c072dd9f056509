"""The training loop: history, snapshots, exact resume (epoch boundary, Ctrl-C mid-epoch), NaN guard, learning."""

from __future__ import annotations

import hashlib
import math
import re
import signal
import warnings
from pathlib import Path

import pytest
import torch

from course_utils.checkpoint import CheckpointError, CheckpointMismatchError, load_checkpoint
from course_utils.data.imageset import to_model_range
from course_utils.device import set_deterministic
from course_utils.losses import g_loss_saturating
from course_utils.models import DCGANDiscriminator, DCGANGenerator
from course_utils.training import (
    DCGANSteps,
    GANSteps,
    TrainConfig,
    TrainingDivergedError,
    TrainingInterrupted,
    TrainingResult,
    batch_order,
    resolve_amp,
    train_gan,
)
from course_utils.training import loop as training

LATENT_DIM = 8
# 48 images, batch 12: 4 steps per epoch; logs synced every 3 steps, so syncs fall inside and at the end of epochs
CONFIG = TrainConfig(num_epochs=4, batch_size=12, lr_g=1e-3, lr_d=1e-3, latent_dim=LATENT_DIM, seed=3,
                     checkpoint_every=1, snapshot_every=1, log_every=3, num_samples=4)


@pytest.fixture(scope="module", autouse=True)
def deterministic():
    """Deterministic kernels for this module, restored afterwards."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    set_deterministic(True)
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1], before[2]


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    """48 random uint8 grey images (48, 1, 28, 28)."""
    return torch.randint(0, 256, (48, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def make_models(seed: int = 0) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """A tiny 28 px DCGAN pair; a different `seed` gives different initial weights."""
    torch.manual_seed(seed)
    return DCGANGenerator(LATENT_DIM, 28, 1, base_width=4), DCGANDiscriminator(28, 1, base_width=4)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> TrainingResult:
    """An uninterrupted 4-epoch run."""
    generator, discriminator = make_models()
    return train_gan(generator, discriminator, data, CONFIG, checkpoint_dir=tmp_path_factory.mktemp("ref"),
                     progress=False)


def assert_same_run(result: TrainingResult, expected: TrainingResult) -> None:
    """Bit-identical weights, buffers, histories and snapshots."""
    for name in ("generator", "discriminator"):
        got, want = getattr(result, name).state_dict(), getattr(expected, name).state_dict()
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), f"{name}.{key} differs"
    assert result.history == expected.history
    assert result.step_history == expected.step_history
    assert result.snapshots.keys() == expected.snapshots.keys()
    for epoch, images in expected.snapshots.items():
        assert torch.equal(result.snapshots[epoch], images), f"snapshot {epoch} differs"
    assert result.epochs_completed == expected.epochs_completed


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CallCounter(DCGANSteps):
    """DCGANSteps that counts its steps (1-based over the whole run) and can act at one of them."""

    def __init__(self, at: int | None = None) -> None:
        super().__init__()
        self.at, self.d_calls, self.g_calls = at, 0, 0


# ----------------------------------------------------------------------------- configuration


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="amp must be one of"):
        TrainConfig(amp="half")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="betas"):
        TrainConfig(betas=(1.0, 0.5))
    with pytest.raises(ValueError, match="lr_g"):
        TrainConfig(lr_g=-1e-4)
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=-1)
    assert TrainConfig(betas=[0.0, 0.9]).betas == (0.0, 0.9)  # lists become tuples (frozen, checkpointable)


def test_resolve_amp_on_cpu() -> None:
    assert resolve_amp("auto", "cpu") is None  # no autocast on CPU unless asked for
    assert resolve_amp("off", "cpu") is None
    assert resolve_amp("bf16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        resolve_amp("fp16", "cpu")


class AutocastProbe(DCGANSteps):
    """Records whether autocast is on inside `self.autocast()` and the discriminator's output dtype there."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, torch.dtype]] = []

    def d_step(self, batch):
        with self.autocast():
            self.seen.append((torch.is_autocast_enabled("cpu"), self.discriminator(batch).dtype))
        return super().d_step(batch)


@pytest.mark.parametrize(("amp", "expected"), [("auto", (False, torch.float32)), ("bf16", (True, torch.bfloat16))])
def test_amp_on_cpu(data, amp: str, expected: tuple[bool, torch.dtype]) -> None:
    probe = AutocastProbe()
    config = TrainConfig(num_epochs=1, batch_size=12, latent_dim=LATENT_DIM, amp=amp, num_samples=2)
    result = train_gan(*make_models(), data, config, steps=probe, progress=False)
    assert set(probe.seen) == {expected}
    assert all(math.isfinite(v) for values in result.history.values() for v in values)


def test_batch_order_is_a_reproducible_permutation() -> None:
    order = batch_order(50, seed=1, epoch=2)
    assert torch.equal(order.sort().values, torch.arange(50))
    assert torch.equal(order, batch_order(50, seed=1, epoch=2))
    assert not torch.equal(order, batch_order(50, seed=1, epoch=3))
    assert not torch.equal(order, batch_order(50, seed=2, epoch=2))


# ----------------------------------------------------------------------------- one run


def test_history_snapshots_and_timing(reference: TrainingResult) -> None:
    assert list(reference.history) == ["loss_d", "d_real", "d_fake", "loss_g"]
    assert all(len(values) == 4 for values in reference.history.values())  # one mean per epoch
    assert all(len(values) == 16 for values in reference.step_history.values())  # 4 epochs x 4 steps
    for key, per_epoch in reference.history.items():
        steps = reference.step_history[key]
        assert per_epoch[1] == pytest.approx(sum(steps[4:8]) / 4, rel=1e-12)
    assert all(0 < v < 1 for key in ("d_real", "d_fake") for v in reference.step_history[key])
    assert reference.history["loss_d"][0] == pytest.approx(math.log(4), abs=0.3)  # starts near equilibrium
    assert sorted(reference.snapshots) == [0, 1, 2, 3, 4]  # 0: before training
    for snapshot in reference.snapshots.values():
        assert snapshot.dtype == torch.uint8 and snapshot.device.type == "cpu"
        assert snapshot.shape == (4, 1, 28, 28)
    assert not torch.equal(reference.snapshots[0], reference.snapshots[4])  # training changed the generator
    latest = reference.latest_snapshot()
    assert latest.min() >= 0 and latest.max() <= 1
    assert reference.timing["images"] == 16 * 12 and reference.timing["images_per_second"] > 0
    assert reference.checkpoint_path is not None and reference.checkpoint_path.name == "last.pt"
    state = load_checkpoint(reference.checkpoint_path)
    assert (state["epoch"], state["step"]) == (4, 0)


def test_logs_sync_only_every_log_every_steps(data, monkeypatch) -> None:
    windows: list[int] = []
    original = training._Trainer.flush

    def spy(self) -> None:
        if self.window:
            windows.append(len(self.window))
        original(self)

    monkeypatch.setattr(training._Trainer, "flush", spy)
    config = TrainConfig(num_epochs=2, batch_size=6, latent_dim=LATENT_DIM, log_every=3, num_samples=2)
    train_gan(*make_models(), data, config, progress=False)  # 8 steps per epoch
    assert windows == [3, 3, 2, 3, 3, 2]  # every 3 steps and at the end of each epoch, never per step


def test_float_data_matches_uint8_data_and_tuples_pass_through(data) -> None:
    config = TrainConfig(num_epochs=1, batch_size=12, latent_dim=LATENT_DIM, num_samples=2)
    from_uint8 = train_gan(*make_models(), data, config, progress=False)
    from_float = train_gan(*make_models(), to_model_range(data), config, progress=False)
    assert_same_run(from_float, from_uint8)

    seen = []

    class Recorder(DCGANSteps):
        def d_step(self, batch):
            seen.append(batch)
            return super().d_step(batch)

    labels = torch.arange(48) % 2
    train_gan(*make_models(), (data, labels), config, steps=Recorder(), progress=False)
    images, batch_labels = seen[0]
    assert images.dtype == torch.float32 and images.min() >= -1 and images.max() <= 1
    assert batch_labels.dtype == torch.int64 and batch_labels.shape == (12,)


def test_float64_images_are_converted_to_float32_with_a_warning(data) -> None:
    config = TrainConfig(num_epochs=1, batch_size=12, latent_dim=LATENT_DIM, num_samples=2)
    from_float32 = train_gan(*make_models(), to_model_range(data), config, progress=False)
    seen = []

    class Recorder(DCGANSteps):
        def d_step(self, batch):
            seen.append(batch.dtype)
            return super().d_step(batch)

    with pytest.warns(UserWarning, match=r"float64.*converted them to float32") as caught:
        from_float64 = train_gan(*make_models(), to_model_range(data).double(), config, steps=Recorder(),
                                 progress=False)
    assert len([w for w in caught if "float64" in str(w.message)]) == 1
    assert set(seen) == {torch.float32}
    assert_same_run(from_float64, from_float32)  # [-1, 1] float32 values survive the float64 round trip exactly


def test_data_fingerprint_is_deterministic_and_sees_the_pixels(data) -> None:
    fingerprint = training._data_fingerprint
    labels = torch.arange(48) % 2
    assert fingerprint((data,)) == fingerprint((data.clone(),))
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint((data,)))
    changed = data.clone()
    changed[0, 0, 0, 0] ^= 1  # one bit of the first image (row 0 is always sampled)
    assert fingerprint((changed,)) != fingerprint((data,))
    assert fingerprint((data, labels)) != fingerprint((data, 1 - labels))  # labels count too
    floats = to_model_range(data)
    assert fingerprint((floats,)) != fingerprint((floats.half(),)) != fingerprint((floats.bfloat16(),))
    assert fingerprint((floats.bfloat16(),)) == fingerprint((floats.bfloat16().clone(),))  # bf16 works
    assert fingerprint((data,)) != fingerprint((data.reshape(48, 1, 14, 56),))  # the shape counts
    many = torch.randint(0, 256, (1000, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert fingerprint((many,)) == fingerprint((many.clone(),))


def test_data_fingerprint_is_computed_once_per_run(data, monkeypatch) -> None:
    calls = []
    original = training._data_fingerprint

    def counting(tensors):
        calls.append(len(tensors))
        return original(tensors)

    monkeypatch.setattr(training, "_data_fingerprint", counting)
    config = TrainConfig(num_epochs=2, batch_size=12, latent_dim=LATENT_DIM, num_samples=2, log_every=2)
    train_gan(*make_models(), data, config, progress=False)
    assert calls == [1]


def test_data_errors(data) -> None:
    config = TrainConfig(num_epochs=1, batch_size=12, latent_dim=LATENT_DIM, num_samples=2)
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        train_gan(*make_models(), data.float(), config, progress=False)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        train_gan(*make_models(), data[:5], config, progress=False)
    with pytest.raises(ValueError, match="generator makes images of shape"):
        train_gan(*make_models(), torch.zeros(16, 1, 32, 32, dtype=torch.uint8), config, progress=False)
    with pytest.raises(TypeError, match="data must be"):
        train_gan(*make_models(), [1, 2, 3], config, progress=False)
    with pytest.raises(NotImplementedError, match="d_step"):
        train_gan(*make_models(), data, config, steps=GANSteps(), progress=False)
    with pytest.warns(UserWarning, match=r"looks like \[0, 1\]"):
        train_gan(*make_models(), data.float() / 255, config, progress=False)


# ----------------------------------------------------------------------------- resume


def test_resume_at_epoch_boundary_is_bit_identical(data, reference, tmp_path) -> None:
    first = train_gan(*make_models(), data, dataclass_replace(CONFIG, num_epochs=2), checkpoint_dir=tmp_path,
                      progress=False)
    assert first.epochs_completed == 2
    resumed = train_gan(*make_models(seed=99), data, CONFIG, checkpoint_dir=tmp_path, progress=False)
    assert_same_run(resumed, reference)
    assert resumed.timing["images"] == 8 * 12  # only epochs 3 and 4 ran in the second call


def dataclass_replace(config: TrainConfig, **changes) -> TrainConfig:
    """`dataclasses.replace` for a TrainConfig."""
    import dataclasses

    return dataclasses.replace(config, **changes)


class InterruptAt(CallCounter):
    """Sends SIGINT (what Jupyter's interrupt button does) from inside g-step number `at`."""

    def g_step(self, batch):
        self.g_calls += 1
        if self.g_calls == self.at:
            signal.raise_signal(signal.SIGINT)
        return super().g_step(batch)


def test_kernel_interrupt_mid_epoch_saves_and_resumes_bit_identically(data, reference, tmp_path) -> None:
    def not_caught(signum, frame):
        raise AssertionError("SIGINT reached the test: train_gan did not install its interrupt handler")

    previous = signal.signal(signal.SIGINT, not_caught)
    try:
        with pytest.raises(TrainingInterrupted) as caught:
            train_gan(*make_models(), data, CONFIG, steps=InterruptAt(at=6), checkpoint_dir=tmp_path,
                      progress=False)
        assert signal.getsignal(signal.SIGINT) is not_caught  # the caller's handler is back
    finally:
        signal.signal(signal.SIGINT, previous)
    err = caught.value
    assert isinstance(err, KeyboardInterrupt) and err.saved
    assert "epoch 2/4, after step 2/4" in str(err) and "again" in str(err)
    assert err.result.epochs_completed == 1 and len(err.result.step_history["loss_d"]) == 6
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 2)  # the step in progress was finished, then saved

    resumed = train_gan(*make_models(seed=99), data, CONFIG, steps=InterruptAt(at=None), checkpoint_dir=tmp_path,
                        progress=False)
    assert_same_run(resumed, reference)


class RaiseInsideDStep(CallCounter):
    """Raises KeyboardInterrupt in d-step number `at`, after the discriminator was updated (half a step)."""

    def __init__(self, at: int | None, checkpoint: Path) -> None:
        super().__init__(at)
        self.checkpoint, self.digest = checkpoint, None

    def d_step(self, batch):
        self.d_calls += 1
        logs = super().d_step(batch)
        if self.d_calls == self.at:
            self.digest = file_digest(self.checkpoint)
            raise KeyboardInterrupt
        return logs


def test_interrupt_inside_a_step_keeps_the_last_checkpoint(data, reference, tmp_path) -> None:
    steps = RaiseInsideDStep(at=7, checkpoint=tmp_path / "last.pt")  # epoch 2, step 3
    with pytest.raises(TrainingInterrupted, match="middle of a step") as caught:
        train_gan(*make_models(), data, CONFIG, steps=steps, checkpoint_dir=tmp_path, progress=False)
    assert not caught.value.saved
    assert "after epoch 1/4" in str(caught.value)
    assert file_digest(tmp_path / "last.pt") == steps.digest  # untouched by the half-done step
    resumed = train_gan(*make_models(seed=99), data, CONFIG, steps=RaiseInsideDStep(None, tmp_path / "last.pt"),
                        checkpoint_dir=tmp_path, progress=False)
    assert_same_run(resumed, reference)


def test_resume_refuses_changed_settings(data, tmp_path) -> None:
    config = dataclass_replace(CONFIG, num_epochs=1)
    train_gan(*make_models(), data, config, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointMismatchError, match="lr_g"):
        train_gan(*make_models(), data, dataclass_replace(config, lr_g=5e-4), checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointMismatchError, match="g_loss"):
        steps = DCGANSteps(g_loss=g_loss_saturating)
        train_gan(*make_models(), data, config, steps=steps, checkpoint_dir=tmp_path, progress=False)
    done = train_gan(*make_models(seed=5), data, config, checkpoint_dir=tmp_path, progress=False)
    assert done.epochs_completed == 1 and done.timing["images"] == 0  # nothing left to train: loaded, returned
    with pytest.warns(UserWarning, match="will be overwritten"):
        train_gan(*make_models(), data, config, checkpoint_dir=tmp_path, resume=False, progress=False)


def test_resume_refuses_different_data_of_the_same_shape(data, tmp_path) -> None:
    config = dataclass_replace(CONFIG, num_epochs=1)
    train_gan(*make_models(), data, config, checkpoint_dir=tmp_path, progress=False)
    other = torch.randint(0, 256, data.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with pytest.raises(CheckpointMismatchError, match="data.fingerprint") as caught:
        train_gan(*make_models(), other, dataclass_replace(config, num_epochs=2), checkpoint_dir=tmp_path,
                  progress=False)
    assert [key for key, _, _ in caught.value.differences] == ["data.fingerprint"]
    labels = torch.arange(48) % 2
    with pytest.raises(CheckpointMismatchError, match="data.fingerprint"):  # added labels: a different run
        train_gan(*make_models(), (data, labels), dataclass_replace(config, num_epochs=2), checkpoint_dir=tmp_path,
                  progress=False)
    resumed = train_gan(*make_models(), data.clone(), dataclass_replace(config, num_epochs=2),
                        checkpoint_dir=tmp_path, progress=False)  # the same pixels in another tensor resume
    assert resumed.epochs_completed == 2


def test_resume_refuses_a_different_amp_mode(data, tmp_path) -> None:
    config = dataclass_replace(CONFIG, num_epochs=1, amp="auto")
    train_gan(*make_models(), data, config, checkpoint_dir=tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["config"]["amp"] == "auto"  # the mode, not the resolved dtype
    with pytest.raises(CheckpointMismatchError, match="amp: stored 'auto', expected 'off'"):
        train_gan(*make_models(), data, dataclass_replace(config, num_epochs=2, amp="off"), checkpoint_dir=tmp_path,
                  progress=False)


def test_fewer_epochs_than_the_checkpoint_warns_and_trains_nothing(data, tmp_path, capsys) -> None:
    train_gan(*make_models(), data, dataclass_replace(CONFIG, num_epochs=2), checkpoint_dir=tmp_path, progress=False)
    digest = file_digest(tmp_path / "last.pt")
    for progress in (False, True):
        with pytest.warns(UserWarning, match="already has 2 epochs, more than num_epochs=1") as caught:
            done = train_gan(*make_models(seed=5), data, dataclass_replace(CONFIG, num_epochs=1),
                             checkpoint_dir=tmp_path, progress=progress)
        message = str(caught[0].message)
        assert "nothing was trained" in message and "after epoch 2" in message
        assert "resume=False" in message and "checkpoint_dir" in message
        assert done.epochs_completed == 2 and done.timing["images"] == 0
        assert len(done.history["loss_d"]) == 2
    printed = capsys.readouterr().out
    assert "Resumed from" in printed
    assert not [m for m in re.findall(r"(\d+)/(\d+)", printed) if int(m[0]) > int(m[1])], printed  # no "epoch 2/1"
    assert file_digest(tmp_path / "last.pt") == digest  # the checkpoint is left as it was


def test_fewer_epochs_than_a_mid_epoch_checkpoint_warns(data, tmp_path) -> None:
    with pytest.raises(TrainingInterrupted):  # saved at epoch 2, after step 2
        train_gan(*make_models(), data, CONFIG, steps=InterruptAt(at=6), checkpoint_dir=tmp_path, progress=False)
    with pytest.warns(UserWarning, match=r"already has 1 epoch and 2/4 steps of epoch 2, more than num_epochs=1"):
        done = train_gan(*make_models(), data, dataclass_replace(CONFIG, num_epochs=1), steps=InterruptAt(at=None),
                         checkpoint_dir=tmp_path, progress=False)
    assert len(done.step_history["loss_d"]) == 6


def test_equal_epochs_resume_says_nothing_to_train_without_warning(data, tmp_path, capsys) -> None:
    config = dataclass_replace(CONFIG, num_epochs=1)
    train_gan(*make_models(), data, config, checkpoint_dir=tmp_path, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_gan(*make_models(), data, config, checkpoint_dir=tmp_path, progress=True)
    printed = capsys.readouterr().out
    assert "after epoch 1/1" in printed and "Nothing to train" in printed


# ----------------------------------------------------------------------------- checkpoint folder


class CountSteps(DCGANSteps):
    """DCGANSteps that counts its d-steps."""

    def __init__(self) -> None:
        super().__init__()
        self.d_calls = 0

    def d_step(self, batch):
        self.d_calls += 1
        return super().d_step(batch)


def test_unusable_checkpoint_dir_fails_before_training(data, tmp_path) -> None:
    blocker = tmp_path / "checkpoints"
    blocker.write_text("a file where the folder should be")
    for folder in (blocker, blocker / "run"):
        steps = CountSteps()
        with pytest.raises(CheckpointError, match=f"{re.escape(str(blocker))} is a file") as caught:
            train_gan(*make_models(), data, CONFIG, steps=steps, checkpoint_dir=folder, progress=False)
        assert steps.d_calls == 0, "the folder must be checked before the first training step"
        assert "COURSE_CHECKPOINT_DIR" in str(caught.value)


def test_checkpoint_dir_is_prepared_before_training(data, tmp_path) -> None:
    stale = tmp_path / "run" / f".last.pt.tmp-{2**22 + 12345}-0a1b2c3d"  # above Linux's largest pid: dead
    stale.parent.mkdir()
    stale.write_bytes(b"half a checkpoint from a killed run")
    steps = CountSteps()
    original = steps.d_step

    def check_first(batch):
        assert (tmp_path / "run").is_dir() and not stale.exists()
        return original(batch)

    steps.d_step = check_first
    train_gan(*make_models(), data, dataclass_replace(CONFIG, num_epochs=1), steps=steps,
              checkpoint_dir=tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["last.pt"]


# ----------------------------------------------------------------------------- NaN guard


class BreakGenerator(CallCounter):
    """Fills the generator's first weight with NaN right after g-step number `at` (as a blow-up would)."""

    def __init__(self, at: int, checkpoint: Path) -> None:
        super().__init__(at)
        self.checkpoint, self.digest = checkpoint, None

    def g_step(self, batch):
        logs = super().g_step(batch)
        self.g_calls += 1
        if self.g_calls == self.at:
            self.digest = file_digest(self.checkpoint)
            with torch.no_grad():
                self.context.generator_module.net[0].weight.fill_(math.nan)
        return logs


def test_nan_loss_stops_with_a_diagnosis_and_keeps_the_checkpoint(data, tmp_path) -> None:
    steps = BreakGenerator(at=9, checkpoint=tmp_path / "last.pt")  # epoch 3, step 1: its own logs are finite
    with pytest.raises(TrainingDivergedError) as caught:
        train_gan(*make_models(), data, CONFIG, steps=steps, checkpoint_dir=tmp_path, progress=False)
    err = caught.value
    message = str(err)
    assert (err.epoch, err.step, err.name) == (3, 2, "loss_d") and math.isnan(err.value)
    assert "epoch 3/4, step 2/4: loss_d = nan" in message
    assert str(tmp_path / "last.pt") in message and "after epoch 2/4" in message
    assert "learning rates" in message and "[-1, 1]" in message
    assert file_digest(tmp_path / "last.pt") == steps.digest
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 2 and all(torch.isfinite(v).all() for v in state["generator"].values())
    assert len(err.result.history["loss_d"]) == 2


def test_nan_weights_are_never_checkpointed(data, tmp_path) -> None:
    steps = BreakGenerator(at=8, checkpoint=tmp_path / "last.pt")  # the last step of epoch 2: logs still finite
    with pytest.raises(TrainingDivergedError, match="generator.net.0.weight is NaN or infinite") as caught:
        train_gan(*make_models(), data, CONFIG, steps=steps, checkpoint_dir=tmp_path, progress=False)
    assert "after epoch 1/4" in str(caught.value)
    assert file_digest(tmp_path / "last.pt") == steps.digest
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


class HugeLoss(DCGANSteps):
    """DCGANSteps whose logged `loss_d` is finite but huge from step `at` on (training itself is unchanged)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def d_step(self, batch):
        logs = super().d_step(batch)
        self.calls += 1
        if self.calls >= self.at:
            logs["loss_d"] = logs["loss_d"] + 5e4
        return logs


def test_huge_finite_loss_warns_once_and_training_goes_on(data) -> None:
    config = dataclass_replace(CONFIG, num_epochs=2)  # 8 steps, synced after steps 3, 4, 7, 8
    with pytest.warns(UserWarning, match="loss_d") as caught:
        result = train_gan(*make_models(), data, config, steps=HugeLoss(at=2), progress=False)
    huge = [str(w.message) for w in caught if "loss_d" in str(w.message)]
    assert len(huge) == 1, huge  # once per run, not at every sync
    message = huge[0]
    assert "epoch 1/2, step 2/4" in message and "5e+04" in message
    assert "learning rates" in message and "amp='off'" in message and "stable" in message
    assert result.epochs_completed == 2 and len(result.step_history["loss_d"]) == 8
    assert result.step_history["loss_d"][0] < 1e4 < result.step_history["loss_d"][1]


def test_divergence_without_checkpoint_says_so(data) -> None:
    steps = BreakGenerator(at=1, checkpoint=Path(__file__))  # any readable file for the digest
    with pytest.raises(TrainingDivergedError, match="checkpoint_dir=None"):
        train_gan(*make_models(), data, CONFIG, steps=steps, progress=False)


# ----------------------------------------------------------------------------- it learns


def two_patterns() -> torch.Tensor:
    """Two uint8 28 px patterns (2, 1, 28, 28): left half bright, top half bright."""
    left = torch.full((1, 28, 28), 25, dtype=torch.uint8)
    left[:, :, :14] = 230
    top = torch.full((1, 28, 28), 25, dtype=torch.uint8)
    top[:, :14, :] = 230
    return torch.stack([left, top])


def distance_to_nearest(images: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """Per image, the RMS difference (in [-1, 1] units) to the nearest pattern, `(B,)`."""
    x, p = to_model_range(images).flatten(1), to_model_range(patterns).flatten(1)
    return torch.cdist(x, p).min(dim=1).values / math.sqrt(x.shape[1])


def test_generator_learns_two_patterns() -> None:
    patterns = two_patterns()
    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(16, 28, 1, base_width=8), DCGANDiscriminator(28, 1, base_width=8)
    config = TrainConfig(num_epochs=150, batch_size=16, lr_g=5e-4, lr_d=5e-4, latent_dim=16, seed=0,
                         snapshot_every=0, log_every=100, num_samples=32)
    result = train_gan(generator, discriminator, patterns.repeat(32, 1, 1, 1), config, progress=False)  # 600 steps
    before = distance_to_nearest(result.snapshots[0], patterns)
    after = distance_to_nearest(result.snapshots[150], patterns)
    assert float(before.mean()) > 0.75  # an untrained generator outputs about 0 (grey)
    assert float(after.mean()) < 0.6 * float(before.mean())
    assert float(after.median()) < 0.5 * float(before.median())  # 1 CPU thread: 0.41 (round-off differs)
    nearest = torch.cdist(result.snapshots[150].float().flatten(1), patterns.float().flatten(1)).argmin(dim=1)
    assert nearest.bincount(minlength=2).min() >= 4  # both patterns are produced, no collapse onto one


def test_run_one_step_matches_a_hand_written_dcgan_step():
    """The notebooks check their written-out steps against `run_one_step`; it must be train_gan's first step."""
    import copy

    from course_utils.losses import d_loss_minimax, g_loss_non_saturating
    from course_utils.training.loop import run_one_step

    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(16, image_size=28, base_width=8), DCGANDiscriminator(image_size=28, base_width=8)
    real = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    config = TrainConfig(num_epochs=1, batch_size=8, latent_dim=16, seed=3)
    g_pkg, d_pkg = copy.deepcopy(generator), copy.deepcopy(discriminator)
    logs = run_one_step(g_pkg, d_pkg, real, config, DCGANSteps())
    g_hand, d_hand = copy.deepcopy(generator).train(), copy.deepcopy(discriminator).train()
    opt_g = torch.optim.Adam(g_hand.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(d_hand.parameters(), lr=config.lr_d, betas=config.betas)
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(config.seed))
    fake = g_hand(z)
    loss_d = d_loss_minimax(d_hand(real.float() / 127.5 - 1), d_hand(fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = g_loss_non_saturating(d_hand(fake))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    assert logs["loss_d"] == pytest.approx(loss_d.item(), rel=1e-6)
    assert logs["loss_g"] == pytest.approx(loss_g.item(), rel=1e-6)
    for a, b in zip([*g_pkg.parameters(), *d_pkg.parameters()], [*g_hand.parameters(), *d_hand.parameters()], strict=True):
        torch.testing.assert_close(a, b)


def test_a_checkpoint_from_an_older_course_version_says_so(data, tmp_path) -> None:
    from course_utils.checkpoint import save_checkpoint

    config = dataclass_replace(CONFIG, num_epochs=1)
    train_gan(*make_models(), data, config, checkpoint_dir=tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    old_settings = state.pop("config")
    old_settings.pop("amp")
    old_settings["data"].pop("fingerprint")  # what checkpoints recorded before these checks existed
    save_checkpoint(tmp_path / "last.pt", state, old_settings)
    with pytest.raises(CheckpointMismatchError, match="older version of the course.*resume=False"):
        train_gan(*make_models(), data, dataclass_replace(config, num_epochs=2), checkpoint_dir=tmp_path,
                  progress=False)


# --- train_classifier's early stopping on an inner validation set (notebook 04) ----------------------------------


def _tiny_classifier_data() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A linear classifier on 8 px images and 24 labelled images (class 1: bright top half)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    labels = torch.arange(24) % 2
    images = torch.randint(0, 100, (24, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    images[labels == 1, :, :4] += 120
    return model, images, labels


def test_early_stopping_keeps_the_best_weights_and_stops_after_patience(monkeypatch) -> None:
    from course_utils.training import supervised

    model, images, labels = _tiny_classifier_data()
    scripted = iter([0.5, 0.7, 0.6, 0.7, 0.65, 0.9])  # best at the 2nd evaluation; 3 evaluations without gain
    seen = []

    def fake_auc(model, images, labels, num_classes):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(supervised, "validation_auc", fake_auc)
    history = supervised.train_classifier(model, images[:16], labels[:16], num_classes=2, steps=40, batch_size=4,
                                          validation=(images[16:], labels[16:]), eval_every=2, patience=3)
    assert history["eval_steps"] == [2, 4, 6, 8, 10] and history["validation_auc"] == [0.5, 0.7, 0.6, 0.7, 0.65]
    assert history["best_step"] == 4 and history["steps_run"] == 10 and len(history["loss"]) == 10
    for name, value in model.state_dict().items():  # the weights of step 4, not of step 10
        assert torch.equal(value, seen[1][name]), name
    assert not torch.equal(seen[1]["1.weight"], seen[-1]["1.weight"])
    assert not model.training


def test_early_stopping_never_passes_the_cap_and_scores_the_last_step() -> None:
    from sklearn.metrics import roc_auc_score

    from course_utils.training.supervised import train_classifier, validation_auc

    model, images, labels = _tiny_classifier_data()
    history = train_classifier(model, images[:16], labels[:16], num_classes=2, steps=7, batch_size=4,
                               validation=(images[16:], labels[16:]), eval_every=3, patience=None)
    assert history["eval_steps"] == [3, 6, 7] and history["steps_run"] == 7 and len(history["loss"]) == 7
    assert history["best_step"] in history["eval_steps"]
    scores = torch.softmax(model(images[16:].float() / 127.5 - 1), 1)[:, 1].detach().numpy()
    assert validation_auc(model, images[16:], labels[16:], 2) == pytest.approx(roc_auc_score(labels[16:], scores))
    assert max(history["validation_auc"]) == pytest.approx(validation_auc(model, images[16:], labels[16:], 2))
    plain = train_classifier(model, images, labels, num_classes=2, steps=5, batch_size=4)
    assert plain["best_step"] == plain["steps_run"] == 5 and plain["eval_steps"] == []
    with pytest.raises(ValueError, match="validation set lacks classes"):
        train_classifier(model, images, labels, num_classes=2, steps=2, validation=(images[:4:2], labels[:4:2]))
