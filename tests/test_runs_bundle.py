"""Runs bundles (`python -m course_utils.runs`): pack, hostile bundles, COURSE_REQUIRE_TRAINED, a course run.

The unit tests use checkpoints written with `save_checkpoint` (no training, a few seconds in all); the last
test runs notebook 05 in the smoke profile twice (marked `slow`: deselect it with `-m "not slow"`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import course_utils
from course_utils import runs
from course_utils.checkpoint import UntrainedRunError, load_checkpoint, save_checkpoint
from course_utils.data.imageset import ImageSet

PROFILE = "smoke"
GAN = "02_dcgan_pneumoniamnist28_smoke/last.pt"
SEGMENTER = "07_hippocampus64_lambda0.1_seed0_smoke/last.pt"
CACHE = "domain_classifier_pneumoniamnist28/classifier_w16_d64_e1_n471_seed0.pt"
PACKED = sorted([GAN, SEGMENTER, CACHE])


class _NotWeights:
    """A pickled object that `torch.load(weights_only=True)` refuses: it could run code."""


def _gan_run(path: Path, epoch: int = 2, num_epochs: int = 2, step: int = 0, seed: int = 0) -> None:
    """A checkpoint shaped like train_gan's (counters, train_config, weights, settings)."""
    torch.manual_seed(seed)
    state = {"format": 1, "epoch": epoch, "step": step, "train_config": {"num_epochs": num_epochs},
             "generator": {"weight": torch.randn(8)}, "history": {"loss_d": [0.5] * epoch}}
    settings = {"batch_size": 64, "betas": (0.5, 0.999), "data": {"fingerprint": f"f{seed}"}}
    save_checkpoint(path, state, settings)


def _cache(path: Path) -> None:
    """A checkpoint shaped like the domain-classifier cache (written once, after training)."""
    save_checkpoint(path, {"model": {"weight": torch.ones(4)}, "test_accuracy": 0.75},
                    {"flag": "pneumoniamnist", "epochs": 1, "data": {"source": "pneumoniamnist.npz"}})


@pytest.fixture(autouse=True)
def _no_step_cap(monkeypatch):
    monkeypatch.delenv("COURSE_STEP_CAP", raising=False)
    monkeypatch.delenv("COURSE_REQUIRE_TRAINED", raising=False)


@pytest.fixture
def teacher(tmp_path) -> Path:
    """A checkpoint root after a course run: completed runs, an unfinished one, another profile's, junk."""
    root = tmp_path / "teacher"
    _gan_run(root / GAN)
    _gan_run(root / SEGMENTER, epoch=3, num_epochs=3, seed=1)
    _cache(root / CACHE)
    _gan_run(root / "02_dcgan_fast_d_smoke/last.pt", epoch=1, num_epochs=2)  # interrupted: not completed
    _gan_run(root / "02_dcgan_pneumoniamnist28_cpu/last.pt")  # another profile
    (root / "03_evil_smoke").mkdir()
    torch.save({"payload": _NotWeights()}, root / "03_evil_smoke/last.pt")  # not weights-only
    (root / "02_dcgan_pneumoniamnist28_smoke/.last.pt.tmp-123-abcd").write_bytes(b"half")  # a killed save
    (root / "empty_run").mkdir()
    return root


@pytest.fixture
def bundle(teacher, tmp_path) -> Path:
    out = tmp_path / "course-runs.zip"
    runs.pack_runs(out, PROFILE, teacher)
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(bundle: Path) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read(runs.MANIFEST_NAME))
        members = {i.filename: archive.read(i) for i in archive.infolist()
                   if i.filename != runs.MANIFEST_NAME}
    return manifest, members


def _write(path: Path, manifest, members: dict[str, bytes] | list[tuple[str, bytes]]) -> Path:
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in items:
            archive.writestr(name, data)
        if manifest is not None:
            text = manifest if isinstance(manifest, str) else json.dumps(manifest)
            archive.writestr(runs.MANIFEST_NAME, text)
    return path


def _listed(manifest: dict, name: str, data: bytes, settings: dict | None = None) -> None:
    """Add (or update) `name` in the manifest with the true size and checksum of `data`."""
    manifest["files"][name] = {"size": len(data), "sha256": _sha(data), "settings": settings or {}}


def _checkpoint_bytes(write, scratch: Path) -> bytes:
    """The bytes of a checkpoint that `write(path)` saves (through a scratch file)."""
    write(scratch)
    data = scratch.read_bytes()
    scratch.unlink()
    return data


def _installed(room: Path) -> list[str]:
    return sorted(str(p.relative_to(room)) for p in room.rglob("*") if p.is_file()) if room.exists() else []


# ----------------------------------------------------------------------------- pack


def test_pack_takes_the_profiles_completed_runs_and_names_the_rest(teacher, tmp_path, capsys):
    out = tmp_path / "course-runs.zip"
    assert runs.main(["pack", str(out), "--profile", PROFILE, "--checkpoint-dir", str(teacher)]) == 0
    printed = capsys.readouterr().out
    manifest, members = _read(out)
    assert sorted(members) == PACKED
    assert manifest["profile"] == PROFILE and manifest["course_version"] == course_utils.__version__
    assert manifest["settings_fingerprint"] == runs.settings_fingerprint(PROFILE)
    assert manifest["step_cap"] is None
    for name, data in members.items():
        entry = manifest["files"][name]
        assert entry["size"] == len(data) and entry["sha256"] == _sha(data)
        assert entry["settings"] == json.loads(json.dumps(load_checkpoint(teacher / name)["config"]))
    assert "02_dcgan_fast_d_smoke/last.pt: unfinished: epoch 1 of 2" in printed
    assert re.search(r"03_evil_smoke/last\.pt: not weights-only", printed)
    assert "1 run folders of other profiles" in printed and "unpack course-runs.zip" in printed
    assert "tmp-123" not in printed and "empty_run" not in printed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_fingerprint_follows_the_notebook_settings(monkeypatch):
    smoke = runs.settings_fingerprint("smoke")
    assert smoke == runs.settings_fingerprint("smoke") and smoke != runs.settings_fingerprint("cpu")
    monkeypatch.setenv("COURSE_STEP_CAP", "2")
    assert runs.settings_fingerprint("smoke") != smoke  # capped runs are other runs


def test_pack_with_no_completed_run_says_what_to_do(tmp_path, capsys):
    root = tmp_path / "ck"
    _gan_run(root / "02_x_smoke/last.pt", epoch=1, num_epochs=2)
    args = ["pack", str(tmp_path / "r.zip"), "--profile", PROFILE, "--checkpoint-dir", str(root)]
    assert runs.main(args) == 2
    err = capsys.readouterr().err
    assert "no completed run of the smoke profile" in err and "make course" in err
    assert not (tmp_path / "r.zip").exists()


def test_list_shows_a_bundle_and_what_pack_would_take(bundle, teacher, capsys):
    assert runs.main(["list", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "3 runs of the smoke profile" in out and "matches this course" in out and GAN in out
    assert runs.main(["list", "--profile", PROFILE, "--checkpoint-dir", str(teacher)]) == 0
    out = capsys.readouterr().out
    assert "3 completed runs" in out and "not packed: 02_dcgan_fast_d_smoke" in out


# ----------------------------------------------------------------------------- unpack


def test_round_trip_installs_every_run_and_reports_it(bundle, teacher, tmp_path, capsys):
    room = tmp_path / "room"
    assert runs.main(["unpack", str(bundle), "--checkpoint-dir", str(room)]) == 0
    out = capsys.readouterr().out
    assert _installed(room) == PACKED
    for name in PACKED:
        assert (room / name).read_bytes() == (teacher / name).read_bytes()
        assert f"new       {name}" in out
    assert "COURSE_PROFILE=smoke make course" in out
    assert [p.name for p in room.iterdir() if p.name.startswith(".")] == []  # the staging folder is gone
    assert runs.main(["unpack", str(bundle), "--checkpoint-dir", str(room)]) == 0  # again: nothing to do
    out = capsys.readouterr().out
    assert "Installed 0 runs" in out and out.count("unchanged") == 3


def test_a_run_already_there_with_other_contents_is_kept_unless_replace(bundle, teacher, tmp_path, capsys):
    room = tmp_path / "room"
    _gan_run(room / GAN, seed=7)  # the learner's own run of the same name
    own = (room / GAN).read_bytes()
    (room / "02_dcgan_pneumoniamnist28_smoke/notes.pt").write_bytes(b"kept")
    assert runs.main(["unpack", str(bundle), "--checkpoint-dir", str(room)]) == 2
    err = capsys.readouterr().err
    assert "already holds 1 of these runs with other contents" in err and "--replace" in err
    assert (room / GAN).read_bytes() == own
    assert _installed(room) == sorted([GAN, "02_dcgan_pneumoniamnist28_smoke/notes.pt"])
    assert runs.main(["unpack", str(bundle), "--checkpoint-dir", str(room), "--replace"]) == 0
    out = capsys.readouterr().out
    assert f"replaced  {GAN}" in out and (room / GAN).read_bytes() == (teacher / GAN).read_bytes()
    assert (room / "02_dcgan_pneumoniamnist28_smoke/notes.pt").read_bytes() == b"kept"  # other files stay


def test_stale_staging_of_a_killed_unpack_is_cleaned(bundle, tmp_path):
    room = tmp_path / "room"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stale = room / f".runs.{child.pid}-0123abcd.unpacking"
    (stale / "02_x_smoke").mkdir(parents=True)
    (stale / "02_x_smoke/last.pt").write_bytes(b"half")
    runs.unpack_runs(bundle, room)
    assert not stale.exists() and _installed(room) == PACKED


def test_a_failure_while_installing_leaves_whole_runs_only(bundle, tmp_path, monkeypatch):
    room = tmp_path / "room"
    real_replace, calls = os.replace, []

    def replace(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(runs.os, "replace", replace)
    with pytest.raises(runs.RunsBundleError, match="runs installed before the error are complete"):
        runs.unpack_runs(bundle, room)
    assert _installed(room) == PACKED[:1] and (room / PACKED[0]).stat().st_size > 0
    assert not [p for p in room.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- hostile and broken bundles


def _case(bundle: Path, path: Path, case: str) -> Path:
    """A copy of `bundle` made hostile or broken in the way `case` names."""
    manifest, members = _read(bundle)
    scratch = path.parent / "scratch.pt"
    evil = _checkpoint_bytes(lambda p: _gan_run(p, seed=9), scratch)
    if case in ("path traversal", "absolute path", "drive letter", "backslash", "hidden folder", "nested",
                "not a checkpoint name", "another profile's run", "empty name"):
        name = {"path traversal": "../evil_smoke/last.pt", "absolute path": "/etc/evil_smoke.pt",
                "drive letter": "C:/evil_smoke.pt", "backslash": "02_x_smoke\\..\\..\\evil.pt",
                "hidden folder": ".ssh/last.pt", "nested": "02_x_smoke/deeper/last.pt",
                "not a checkpoint name": "02_x_smoke/run.sh", "another profile's run": "02_x_cpu/last.pt",
                "empty name": ""}[case]
        _listed(manifest, name, evil)
        return _write(path, manifest, {**members, name: evil} if name else members)
    if case == "tampered entry":  # same size, other bytes, manifest untouched
        data = bytearray(members[GAN])
        data[len(data) // 2] ^= 0xFF
        return _write(path, manifest, {**members, GAN: bytes(data)})
    if case == "tampered size":
        return _write(path, manifest, {**members, GAN: members[GAN] + b"\0"})
    if case == "extra entry":
        return _write(path, manifest, {**members, "02_extra_smoke/last.pt": evil})
    if case == "missing entry":
        return _write(path, manifest, {k: v for k, v in members.items() if k != GAN})
    if case == "duplicated name":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
            return _write(path, manifest, [*members.items(), (GAN, members[GAN])])
    if case == "two spellings":
        upper = GAN.replace("02_dcgan", "02_DCGAN")
        _listed(manifest, upper, members[GAN], manifest["files"][GAN]["settings"])
        return _write(path, manifest, {**members, upper: members[GAN]})
    if case == "symlink":
        _listed(manifest, "02_link_smoke/last.pt", b"/etc/passwd")
        with zipfile.ZipFile(_write(path, manifest, members), "a") as archive:
            info = zipfile.ZipInfo("02_link_smoke/last.pt")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, b"/etc/passwd")
        return path
    if case == "folder entry":
        return _write(path, manifest, {**members, "02_dcgan_pneumoniamnist28_smoke/": b""})
    if case == "not weights-only, checksum updated":
        buffer = io.BytesIO()
        torch.save({"config": {}, "payload": _NotWeights()}, buffer)
        _listed(manifest, GAN, buffer.getvalue(), manifest["files"][GAN]["settings"])
        return _write(path, manifest, {**members, GAN: buffer.getvalue()})
    if case == "unfinished run, checksum updated":
        data = _checkpoint_bytes(lambda p: _gan_run(p, epoch=1, num_epochs=2), scratch)
        _listed(manifest, GAN, data, manifest["files"][GAN]["settings"])
        return _write(path, manifest, {**members, GAN: data})
    if case == "settings not those stored":
        manifest["files"][GAN]["settings"]["batch_size"] = 128
        return _write(path, manifest, members)
    if case == "other notebook settings":
        manifest["settings_fingerprint"] = "0" * 64
        return _write(path, manifest, members)
    if case == "older course version":
        manifest["settings_fingerprint"], manifest["course_version"] = "0" * 64, "0.0.9"
        return _write(path, manifest, members)
    if case == "no manifest":
        return _write(path, None, members)
    if case == "manifest not json":
        return _write(path, "{not json", members)
    if case == "manifest a list":
        return _write(path, list(manifest["files"]), members)
    if case == "manifest key twice":
        text = json.dumps(manifest)
        return _write(path, text[:-1] + ', "profile": "gpu"}', members)
    if case == "manifest missing a key":
        del manifest["settings_fingerprint"]
        return _write(path, manifest, members)
    if case == "manifest checksum not sha256":
        manifest["files"][GAN]["sha256"] = "d41d8cd98f00b204e9800998ecf8427e"
        return _write(path, manifest, members)
    if case == "manifest unknown profile":
        manifest["profile"] = "tpu"
        return _write(path, manifest, members)
    if case == "not a zip":
        path.write_bytes(b"this is not a zip file at all")
        return path
    if case == "truncated":
        path.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
        return path
    if case == "deflate stream damaged":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
            archive.writestr(runs.MANIFEST_NAME, json.dumps(manifest))
        raw = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(GAN)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for offset in range(start + 50, start + 114):
            raw[offset] ^= 0xFF
        path.write_bytes(bytes(raw))
        return path
    assert case == "missing file", case
    return path.parent / "absent.zip"


HOSTILE = [
    ("path traversal", "unsafe or unexpected path"),
    ("absolute path", "unsafe or unexpected path"),
    ("drive letter", "unsafe or unexpected path"),
    ("backslash", "unsafe or unexpected path"),
    ("hidden folder", "unsafe or unexpected path"),
    ("nested", "unsafe or unexpected path"),
    ("not a checkpoint name", "unsafe or unexpected path"),
    ("empty name", "unsafe or unexpected path"),
    ("another profile's run", "a run of another profile"),
    ("tampered entry", "does not match its SHA-256"),
    ("tampered size", "tampered with"),
    ("extra entry", "does not list"),
    ("missing entry", "lacks 1 runs"),
    ("duplicated name", "more than once"),
    ("two spellings", "more than once"),
    ("symlink", "a link or a folder"),
    ("folder entry", "does not list"),
    ("not weights-only, checksum updated", "is not weights-only"),
    ("unfinished run, checksum updated", "is not a completed run (unfinished: epoch 1 of 2)"),
    ("settings not those stored", "stores other settings than"),
    ("other notebook settings", "would ask for other runs"),
    ("older course version", "course version 0.0.9, this course is"),
    ("no manifest", "no COURSE_RUNS.json"),
    ("manifest not json", "not valid JSON"),
    ("manifest a list", "must be a JSON object"),
    ("manifest key twice", "duplicated key 'profile'"),
    ("manifest missing a key", "its keys must be"),
    ("manifest checksum not sha256", "not a size and a SHA-256"),
    ("manifest unknown profile", "'tpu' is not one of"),
    ("not a zip", "not a readable zip"),
    ("truncated", "not a readable zip | not a runs bundle"),  # (the stored checkpoints are zips themselves)
    ("deflate stream damaged", "not a readable zip | does not match its SHA-256"),
    ("missing file", "There is no runs bundle"),
]


@pytest.mark.parametrize("case, expected", HOSTILE, ids=[case for case, _ in HOSTILE])
def test_hostile_and_broken_bundles_are_refused_with_one_line(case, expected, bundle, tmp_path, capsys):
    path = _case(bundle, tmp_path / "hostile.zip", case)
    room = tmp_path / "room"
    assert runs.main(["unpack", str(path), "--checkpoint-dir", str(room)]) == 2
    err = capsys.readouterr().err.strip()
    assert any(words in err for words in expected.split(" | ")), err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert _installed(room) == [], "nothing may be installed"
    assert not (tmp_path / "evil_smoke").exists() and not (room.exists() and list(room.iterdir()))


def test_the_version_message_says_how_to_fix_it(bundle, tmp_path, capsys):
    runs.main(["unpack", str(_case(bundle, tmp_path / "old.zip", "older course version")),
               "--checkpoint-dir", str(tmp_path / "room")])
    err = capsys.readouterr().err
    assert "runs of the smoke profile" in err and "Pack them again with this version" in err
    assert "pack FILE.zip --profile smoke" in err


@pytest.mark.parametrize("cap, size", [("MAX_FILE_BYTES", 1000), ("MAX_TOTAL_BYTES", 1000)])
def test_bundles_over_the_cap_are_refused_before_unpacking(cap, size, bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, cap, size)
    monkeypatch.setattr(runs, "_extract", lambda *a: pytest.fail("must refuse before extracting"))
    assert runs.main(["unpack", str(bundle), "--checkpoint-dir", str(tmp_path / "room")]) == 2
    err = capsys.readouterr().err
    assert "over the cap of a runs bundle" in err and "per file" in err


def test_a_bundle_larger_than_the_free_space_is_refused(bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    monkeypatch.setattr(runs, "_extract", lambda *a: pytest.fail("must refuse before extracting"))
    assert runs.main(["unpack", str(bundle), "--checkpoint-dir", str(tmp_path / "room")]) == 2
    err = capsys.readouterr().err
    assert "MB free" in err and "--checkpoint-dir" in err


def test_an_oversized_manifest_is_not_read(bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "MANIFEST_MAX_BYTES", 100)
    assert runs.main(["unpack", str(bundle), "--checkpoint-dir", str(tmp_path / "room")]) == 2
    assert "more than a list of runs can take" in capsys.readouterr().err


def test_pack_refuses_runs_over_the_cap(teacher, tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "MAX_FILE_BYTES", 1000)
    with pytest.raises(runs.RunsBundleError, match="at most"):
        runs.pack_runs(tmp_path / "r.zip", PROFILE, teacher)


# ----------------------------------------------------------------------------- COURSE_REQUIRE_TRAINED


def _tiny_gan():
    from course_utils.models import DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(0)
    return DCGANGenerator(8, 28, 1, base_width=4), DCGANDiscriminator(28, 1, base_width=4)


def test_require_trained_refuses_to_train_a_run_of_the_checkpoint_root(tmp_path, monkeypatch, one_thread):
    from course_utils.training import TrainConfig, train_gan

    root = tmp_path / "ck"
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(root))
    data = torch.randint(0, 256, (24, 1, 28, 28), dtype=torch.uint8)
    config = TrainConfig(num_epochs=1, batch_size=12, latent_dim=8, num_samples=4, log_every=1)
    monkeypatch.setenv("COURSE_REQUIRE_TRAINED", "1")
    with pytest.raises(UntrainedRunError, match=r"02_x_smoke would be trained now \(no finished checkpoint"):
        train_gan(*_tiny_gan(), data, config, checkpoint_dir=root / "02_x_smoke", progress=False)
    demo = train_gan(*_tiny_gan(), data, config, checkpoint_dir=tmp_path / "demo", progress=False)
    assert demo.epochs_completed == 1, "a run outside the checkpoint root (a notebook's demo) still trains"
    monkeypatch.delenv("COURSE_REQUIRE_TRAINED")
    trained = train_gan(*_tiny_gan(), data, config, checkpoint_dir=root / "02_x_smoke", progress=False)
    monkeypatch.setenv("COURSE_REQUIRE_TRAINED", "1")
    loaded = train_gan(*_tiny_gan(), data, config, checkpoint_dir=root / "02_x_smoke", progress=False)
    assert loaded.timing["images"] == 0 and loaded.history == trained.history
    with pytest.raises(UntrainedRunError, match="epoch 1 of 2"):
        train_gan(*_tiny_gan(), data, dataclasses.replace(config, num_epochs=2),
                  checkpoint_dir=root / "02_x_smoke", progress=False)


def test_domain_classifier_cache_is_portable_and_required(tmp_path, monkeypatch, one_thread):
    from course_utils import data as data_module
    from course_utils.protocols.domain_classifier import load_or_train_domain_classifier

    folder = {"now": "/teacher/data"}

    def fake_data(flag, split, size=28):
        generator = torch.Generator().manual_seed(0 if split == "train" else 1)
        images = torch.randint(0, 256, (24, 1, 28, 28), generator=generator, dtype=torch.uint8)
        source = f"{folder['now']}/medmnist/{flag}.npz"
        return ImageSet(name=flag, split=split, images=images, labels=torch.arange(24) % 2,
                        class_names=("a", "b"), source=source, licence="CC BY 4.0")

    monkeypatch.setattr(data_module, "load_classification_data", fake_data)
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "ck"))
    recipe = {"epochs": 1, "batch_size": 12, "width": 4, "feature_dim": 8, "device": "cpu", "progress": False}
    monkeypatch.setenv("COURSE_REQUIRE_TRAINED", "1")
    with pytest.raises(UntrainedRunError, match="no cached classifier"):
        load_or_train_domain_classifier("pneumoniamnist", 28, **recipe)
    monkeypatch.delenv("COURSE_REQUIRE_TRAINED")
    first = load_or_train_domain_classifier("pneumoniamnist", 28, **recipe)
    assert not first.from_cache and first.settings["data"]["source"] == "pneumoniamnist.npz"
    folder["now"] = "/learner/course/data"  # the room's data folder is elsewhere
    monkeypatch.setenv("COURSE_REQUIRE_TRAINED", "1")
    again = load_or_train_domain_classifier("pneumoniamnist", 28, **recipe)
    assert again.from_cache and again.test_accuracy == first.test_accuracy


# ----------------------------------------------------------------------------- a course from a bundle


def _course(notebooks: list[str], root: Path, build: Path, monkeypatch) -> dict[str, str]:
    """Run the notebooks as `make course` does, with `root` as the checkpoint root; {notebook: headline}."""
    from course_utils import runner

    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(root))
    results = runner.run_course(PROFILE, notebooks, build, progress_every=3600)
    assert [run.status for run in results] == ["ok"] * len(notebooks), [run.failure for run in results]
    return {run.name: run.headline for run in results}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _sha(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_course_from_an_unpacked_bundle_trains_nothing_and_repeats_its_headline(mirror, tmp_path,
                                                                                    monkeypatch):
    """05 in smoke: run, pack, unpack into a fresh folder, run again with COURSE_REQUIRE_TRAINED=1.

    One of the cheapest notebooks with several runs under the checkpoint root (SRResNet, SRGAN and its
    pixel-loss control, through `train_gan`) and a headline of measured numbers: about 15-30 s per pass on 2
    cores. (The tiny `train_gan` test above covers a run outside the root, like 02's resume demo.)
    """
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebooks = ["05"]
    started = time.perf_counter()
    first = _course(notebooks, tmp_path / "teacher", tmp_path / "build1", monkeypatch)
    trained_in = time.perf_counter() - started
    report = runs.pack_runs(tmp_path / "course-runs.zip", PROFILE, tmp_path / "teacher")
    assert {run.name.split("_")[0] for run in report.files} == {"05"} and len(report.files) >= 3
    room = tmp_path / "room"
    unpacked = runs.unpack_runs(tmp_path / "course-runs.zip", room)
    assert sorted(unpacked.installed) == sorted(run.name for run in report.files)
    before = _digests(room)
    monkeypatch.setenv("COURSE_REQUIRE_TRAINED", "1")  # any run that would train raises UntrainedRunError
    started = time.perf_counter()
    second = _course(notebooks, room, tmp_path / "build2", monkeypatch)
    loaded_in = time.perf_counter() - started
    assert _digests(room) == before, "a run under the checkpoint root was trained or rewritten"
    super_resolution = "05_srgan_mri_super_resolution"
    assert second[super_resolution] == first[super_resolution] and "SRGAN" in first[super_resolution]
    print(f"trained course {trained_in:.0f} s, from the bundle {loaded_in:.0f} s")
