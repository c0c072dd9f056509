"""Profiles resolve as documented; device choice, seeding and the runner's report behave."""

from __future__ import annotations

import dataclasses
import math
import os
import random

import numpy as np
import pytest
import torch

from course_utils import config, device, report, runner


def test_profile_from_environment(monkeypatch):
    monkeypatch.setattr(config, "_cuda_available", lambda: True)  # no gpu-without-CUDA warning here
    for name in config.PROFILES:
        monkeypatch.setenv("COURSE_PROFILE", name.upper())
        assert config.active_profile() == name


@pytest.mark.parametrize("cuda,expected", [(True, "gpu"), (False, "cpu")])
def test_unset_profile_follows_cuda(monkeypatch, cuda, expected):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(config, "_cuda_available", lambda: cuda)
    assert config.active_profile() == expected


def test_gpu_profile_without_cuda_warns_once(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.setattr(config, "_cuda_available", lambda: False)
    monkeypatch.setattr(config, "_gpu_warning_shown", False)
    with pytest.warns(UserWarning, match=r"gpu profile.*COURSE_PROFILE=gpu.*no CUDA GPU.*on the CPU.*hours.*COURSE_PROFILE=cpu") as caught:
        assert config.active_profile() == "gpu", "the profile asked for is still used"
        assert config.active_profile() == "gpu"
    assert len(caught) == 1, "the warning is given once per process"


def test_gpu_profile_with_cuda_does_not_warn(monkeypatch, recwarn):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.setattr(config, "_cuda_available", lambda: True)
    monkeypatch.setattr(config, "_gpu_warning_shown", False)
    assert config.active_profile() == "gpu"
    assert not [w for w in recwarn if "CUDA" in str(w.message)]


def test_bad_profile_explains_the_choices(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(config.ProfileError, match=r"'fast'.*smoke, cpu, gpu"):
        config.active_profile()


def test_every_notebook_has_frozen_settings_for_every_profile():
    for notebook, per_profile in config.NOTEBOOK_SETTINGS.items():
        assert set(per_profile) == set(config.PROFILES), notebook
        settings = config.settings_for(notebook, "smoke")
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.__setattr__(dataclasses.fields(settings)[0].name, None)


def _leaves(settings, prefix=""):
    """(dotted name, value) of every field, nested settings (e.g. a TrainConfig) included."""
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", value


def test_smoke_is_never_bigger_than_cpu():
    for notebook in config.NOTEBOOK_SETTINGS:
        smoke = dict(_leaves(config.settings_for(notebook, "smoke")))
        cpu = dict(_leaves(config.settings_for(notebook, "cpu")))
        for name, small in smoke.items():
            big = math.inf if cpu[name] is None else cpu[name]  # None caps nothing (e.g. max_train_cases)
            if isinstance(small, int) and not isinstance(small, bool) and not name.endswith(("seed", "every")):
                assert small <= big, f"{notebook}.{name}: smoke {small} > cpu {big}"


def test_settings_share_one_vocabulary():
    """Lengths are `num_epochs` / `num_steps`, learning rates `lr_g` / `lr_d` / `lr`, each run a TrainConfig."""
    for notebook in config.NOTEBOOK_SETTINGS:
        for profile in config.PROFILES:
            for name, _ in _leaves(config.settings_for(notebook, profile)):
                leaf = name.rsplit(".", 1)[-1]
                assert not (leaf.endswith("_epochs") and leaf != "num_epochs"), f"{notebook}.{name}"
                assert not (leaf.startswith("lr") and leaf not in ("lr", "lr_g", "lr_d")), f"{notebook}.{name}"
                assert not leaf.endswith(("base_width", "_steps_count")), f"{notebook}.{name}"
    typed = config.settings_for("02_dcgan_medmnist", "smoke")
    assert isinstance(typed.train, config.TrainConfig) and typed.train.num_epochs >= 1


def test_settings_for_unknown_notebook(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    with pytest.raises(config.ProfileError, match="No settings for notebook '99_x'"):
        config.settings_for("99_x")


def test_seed_everything_repeats_all_generators():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    device.seed_everything(7)
    first = draw()
    device.seed_everything(7)
    assert draw() == first


def test_pick_device_on_this_machine_and_bad_request(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_mps_available", lambda: False)
    assert device.pick_device() == torch.device("cpu")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        device.pick_device("cuda")


def test_use_cpu_threads_caps_torchs_default_or_takes_the_override(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(device.CPU_THREADS_ENV, raising=False)
        monkeypatch.setattr(device, "usable_cores", lambda: 2)
        monkeypatch.setattr(device, "TORCH_DEFAULT_THREADS", 4)  # torch's default, capped at the usable cores
        assert device.use_cpu_threads(torch.device("cpu")) == 2 and torch.get_num_threads() == 2
        monkeypatch.setattr(device, "TORCH_DEFAULT_THREADS", 1)  # e.g. OMP_NUM_THREADS=1: kept
        assert device.use_cpu_threads("cpu") == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv(device.CPU_THREADS_ENV, "1")
        assert device.use_cpu_threads(torch.device("cpu")) == 1 and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        assert device.use_cpu_threads(torch.device("cuda")) == 2  # a GPU run leaves the CPU threads alone
        for bad in ("0", "two", "-1"):
            monkeypatch.setenv(device.CPU_THREADS_ENV, bad)
            with pytest.raises(ValueError, match="COURSE_CPU_THREADS"):
                device.use_cpu_threads(torch.device("cpu"))
    finally:
        torch.set_num_threads(before)
    assert 1 <= device.usable_cores() <= (os.cpu_count() or 1)


def test_environment_report_names_the_profile(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    facts = device.describe_environment()
    assert facts["profile"] == "smoke" and facts["torch"] == torch.__version__


def test_report_records_headline_and_fallback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(report.REPORT_ENV, str(tmp_path / "r.jsonl"))
    report.headline("FID 12.3")
    report.note_fallback("breastmnist@28", "mni152", "offline")
    records = report.read_report(tmp_path / "r.jsonl")
    assert [r["kind"] for r in records] == ["headline", "fallback"]
    assert "HEADLINE: FID 12.3" in capsys.readouterr().out


def test_summary_table_marks_fallback_data():
    runs = [runner.NotebookRun("00_setup_and_data", "ok", 12.0, "6 datasets", ()),
            runner.NotebookRun("02_dcgan_medmnist", "ok", 30.0, "FID 40", ("pneumoniamnist@28->mni152",))]
    table = runner.format_summary(runs, "cpu")
    assert "| 00_setup_and_data | ok | 12.0 s | not measured | 6 datasets | as planned |" in table
    assert "fallback: pneumoniamnist@28->mni152" in table


def test_exercise_check(capsys):
    from course_utils.exercises import check

    assert check("q1", 0.5686, 200 / 127.5 - 1)
    assert not check("q2", 0.6, 200 / 127.5 - 1)
    assert not check("q3", None, 1.0)
    assert check("q4", "Grey Matter", "grey matter")
    out = capsys.readouterr().out
    assert "q1: correct" in out and "q2: not quite" in out and "q3: not answered" in out


def test_run_dir_honours_env_and_rejects_paths(tmp_path, monkeypatch):
    from course_utils import locations as paths

    monkeypatch.setenv(paths.CHECKPOINT_ENV, str(tmp_path / "ck"))
    assert paths.run_dir("02_dcgan_cpu") == tmp_path / "ck" / "02_dcgan_cpu"
    with pytest.raises(ValueError, match="plain folder name"):
        paths.run_dir("../escape")
