"""The `gpu` profile, checked on any machine: its settings, its precision choice, its memory, and every notebook.

No GPU is needed. The notebook runs and the compile path are marked `gpu_profile` and left out of `make test`
(CI's 15-minute budget); `make test-gpu-profile` runs them (about 13 minutes on 2 cores; RESULTS.md).
`COURSE_STEP_CAP` (see `course_utils.config.apply_step_cap`) caps every training run of a
profile to a few optimisation steps and nothing else, so each notebook runs its `gpu` settings (64/128 px images,
full-width models, the 64 px data files and their visible fallback) top to bottom in about a minute on a CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from course_utils import config, report, runner
from course_utils.config import STEP_CAP_ENV, TrainConfig, apply_step_cap, settings_for
from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator
from course_utils.training import DCGANSteps, train_gan
from course_utils.training.loop import AcceleratorMemoryError, resolve_amp
from course_utils.training.memory import estimate_step_memory

# --- the step cap ---------------------------------------------------------------------------------

def _train_configs(settings, prefix=""):
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, TrainConfig):
            yield f"{prefix}{field.name}", value
        elif dataclasses.is_dataclass(value):
            yield from _train_configs(value, f"{prefix}{field.name}.")


@pytest.mark.parametrize("notebook", sorted(config.NOTEBOOK_SETTINGS))
def test_step_cap_shortens_training_and_nothing_else(notebook):
    full = settings_for(notebook, "gpu")
    capped = apply_step_cap(full, 2)
    for (name, before), (_, after) in zip(_train_configs(full), _train_configs(capped), strict=True):
        assert after.max_steps == 2 and after.num_epochs == 1, name
        assert dataclasses.replace(after, max_steps=None, num_epochs=before.num_epochs) == before, name
    for field in dataclasses.fields(full):
        if field.name in ("image_size", "width", "crop_size", "depth", "critic_width", "volume_size", "dataset"):
            assert getattr(capped, field.name) == getattr(full, field.name), field.name


def test_assert_same_update_tolerates_round_off_but_not_a_different_step():
    from course_utils.training import assert_same_update

    torch.manual_seed(0)
    net = torch.nn.Linear(100, 100)
    twin = copy.deepcopy(net)
    with torch.no_grad():
        twin.weight[0, :5] += 1e-4  # 5 of 10,100 elements: round-off amplified where a gradient was ~0
    assert_same_update(net, twin)
    with torch.no_grad():
        twin.weight.mul_(1.001)  # a different step moves almost every weight
    with pytest.raises(AssertionError, match="not the same computation"):
        assert_same_update(net, twin)


def test_step_cap_from_the_environment(monkeypatch):
    monkeypatch.setenv(STEP_CAP_ENV, "3")
    assert settings_for("02_dcgan_medmnist", "gpu").train.max_steps == 3
    monkeypatch.setenv(STEP_CAP_ENV, "zero")
    with pytest.raises(config.ProfileError, match=STEP_CAP_ENV):
        settings_for("02_dcgan_medmnist", "gpu")


def test_train_gan_stops_after_max_steps():
    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(8, 28, 1, 4), DCGANDiscriminator(28, 1, 4)
    images = torch.randint(0, 256, (80, 1, 28, 28), dtype=torch.uint8)  # 10 batches of 8
    result = train_gan(generator, discriminator, images, TrainConfig(num_epochs=1, batch_size=8, latent_dim=8,
                                                                      max_steps=2), progress=False)
    assert len(result.step_history["loss_d"]) == 2 and result.epochs_completed == 1


# --- precision on the GPUs learners have ------------------------------------------------------------

@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16)])
def test_auto_amp_uses_fp16_on_a_t4_and_bf16_from_ampere_on(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # T4: emulated
    assert resolve_amp("auto", "cuda") == expected
    if capability < (8, 0):
        with pytest.raises(ValueError, match="bfloat16"):
            resolve_amp("bf16", "cuda")


def test_bf16_autocast_and_channels_last_paths_run_on_cpu():
    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(8, 64, 1, 4), DCGANDiscriminator(64, 1, 4)
    images = torch.randint(0, 256, (16, 1, 64, 64), dtype=torch.uint8)
    result = train_gan(generator, discriminator, images,
                       TrainConfig(num_epochs=1, batch_size=8, latent_dim=8, amp="bf16", channels_last=True),
                       progress=False)
    assert all(math.isfinite(v) for v in result.step_history["loss_d"])


# --- memory ---------------------------------------------------------------------------------------

def test_channels_last_is_the_default_on_cpu_and_can_be_switched_off():
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    for wanted, expected in ((None, True), (False, False)):
        torch.manual_seed(0)
        generator, discriminator = DCGANGenerator(8, 28, 1, 4), DCGANDiscriminator(28, 1, 4)
        train_gan(generator, discriminator, images, TrainConfig(num_epochs=1, batch_size=8, latent_dim=8,
                                                                channels_last=wanted, snapshot_every=0,
                                                                checkpoint_every=0), progress=False)
        conv = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # many input channels
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) is expected, wanted


def test_memory_estimate_counts_parameters_and_grows_with_the_batch():
    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(16, 64, 1, 8), DCGANDiscriminator(64, 1, 8)
    images = torch.randint(0, 256, (64, 1, 64, 64), dtype=torch.uint8)
    small = estimate_step_memory(generator, discriminator, images, TrainConfig(batch_size=8, latent_dim=16))
    large = estimate_step_memory(generator, discriminator, images, TrainConfig(batch_size=32, latent_dim=16))
    parameters = sum(p.numel() for m in (generator, discriminator) for p in m.parameters())
    assert small.parameters >= parameters * 4 and small.optimiser_and_gradients == 3 * parameters * 4
    assert 3.0 < large.activations / small.activations < 5.0, "activations scale with the batch"
    assert small.data == images.numel() and "GB" in small.describe()
    assert small.fits(2 * (1 << 30)) and not large.fits(large.total_bytes)


def test_out_of_accelerator_memory_gives_a_clear_message(monkeypatch):
    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(8, 28, 1, 4), DCGANDiscriminator(28, 1, 4)
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)

    def out_of_memory(self, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(DCGANSteps, "d_step", out_of_memory)
    with pytest.raises(AcceleratorMemoryError, match="batch_size=8.*COURSE_PROFILE=cpu"):
        train_gan(generator, discriminator, images, TrainConfig(num_epochs=1, batch_size=8, latent_dim=8),
                  progress=False)


def test_memory_records_reach_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv(report.REPORT_ENV, str(tmp_path / "r.jsonl"))
    report.memory("02 DCGAN", 3 * 10**9, "3.00 GB (...)")
    assert report.read_report(tmp_path / "r.jsonl") == [
        {"kind": "memory", "run": "02 DCGAN", "bytes": "3000000000", "text": "3.00 GB (...)"}]


# --- every notebook, in its gpu settings, on this machine --------------------------------------------

NOTEBOOKS = [p.stem for p in runner.course_notebooks(runner.REPO_ROOT / "notebooks")]


@pytest.fixture(scope="module")
def gpu_checkpoints(tmp_path_factory):
    """One checkpoint folder for the whole capped course, as `make course` has: 09 loads 08's runs, and the
    domain classifiers are trained once per dataset (run alone, a notebook's test trains what it needs)."""
    return tmp_path_factory.mktemp("gpu-checkpoints")


@pytest.mark.gpu_profile  # not in `make test` (CI's 15-minute budget): `make test-gpu-profile`
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_runs_in_the_gpu_profile_with_capped_training(notebook, gpu_checkpoints, tmp_path, monkeypatch):
    monkeypatch.setenv(STEP_CAP_ENV, "2")
    monkeypatch.setenv("COURSE_OFFLINE", "1")  # the 64/128 px files that are missing must fall back visibly
    # 03 gets a folder of its own, so that it trains the DCGAN it trains when 02's checkpoint is absent
    checkpoints = tmp_path / "checkpoints" if notebook.startswith("03") else gpu_checkpoints
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(checkpoints))
    monkeypatch.setenv(report.MEMORY_ENV, "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::UserWarning")  # the "gpu profile without CUDA" warning
    [run] = runner.run_course("gpu", [notebook[:2]], tmp_path / "build")
    assert run.status == "ok", f"{notebook} failed in the gpu profile: {run.status} (see {tmp_path / 'build'})"
    assert run.headline, f"{notebook} printed no headline"
    if notebook[:2] not in ("00", "01"):  # 00 trains nothing; 01's toy GANs use their own few-line loop
        assert run.memory_bytes > 0, "every notebook that calls train_gan reports the memory its gpu settings need"


@pytest.mark.gpu_profile  # inductor compiles C++ for about a minute on 2 cores: `make test-gpu-profile`
def test_torch_compile_path_runs_on_cpu():
    """`compile=True` (an option of every TrainConfig) goes through torch.compile's CPU backend here."""
    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(8, 28, 1, 4), DCGANDiscriminator(28, 1, 4)
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    result = train_gan(generator, discriminator, images,
                       TrainConfig(num_epochs=1, batch_size=8, latent_dim=8, compile=True), progress=False)
    assert len(result.step_history["loss_g"]) == 2 and all(math.isfinite(v) for v in result.step_history["loss_g"])


def test_step_cap_also_shortens_repeats_fractions_and_resamples():
    full = settings_for("04_conditional_gan_augmentation", "gpu")
    capped = apply_step_cap(full, 2)
    assert full.repeats > 1 and capped.repeats == 1
    assert capped.fractions == (full.fractions[0], full.fractions[-1]) and len(full.fractions) > 2
    assert capped.bootstrap_resamples == 2
    assert apply_step_cap(settings_for("03_evaluating_gans", "gpu"), 2).small_sample_draws == 2


def test_step_cap_keeps_a_resamplable_split_by_case_for_05():
    full = settings_for("05_srgan_mri_super_resolution", "gpu")
    capped = apply_step_cap(full, 2)
    assert full.subjects is None and capped.subjects == 20  # None = all 260 cases; 20 leaves 4 test cases
    assert capped.two_sample_steps == 2 and capped.seeds == full.seeds[:2]
    assert apply_step_cap(dataclasses.replace(full, subjects=12), 2).subjects == 12
