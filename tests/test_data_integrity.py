"""Hostile bundles, crashes and careless input: the data layer's integrity rules (issue: data integrity)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from course_utils import locations
from course_utils.data import (
    CorruptDataError,
    DatasetNotFoundError,
    UnreadableDataError,
    hippocampus,
    load_classification_data,
    medmnist_data,
    staging,
)
from course_utils.data import __main__ as cli
from course_utils.data import bundle as bundle_module
from course_utils.data import download as download_module

H = hippocampus.FOLDER


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _dead_pid() -> int:
    """The id of a process that has just ended (so it is not alive)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def official_bundle(tmp_path_factory) -> Path:
    """A bundle made by `bundle` from the mirror (built once for this module)."""
    from conftest import mirror_or_skip

    mirror = mirror_or_skip()
    out = tmp_path_factory.mktemp("bundle") / "course-data.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_DATA_DIR", str(mirror))
        bundle_module.make_bundle(out)
    return out


def _rewrite(source: Path, target: Path, change=None, extra: dict[str, bytes] | None = None,
             drop: tuple[str, ...] = (), manifest_change=None) -> Path:
    """A copy of bundle `source` with members changed, added or dropped, and its manifest edited."""
    with zipfile.ZipFile(source) as old:
        manifest = json.loads(old.read(bundle_module.MANIFEST_NAME))
        members = {i.filename: old.read(i) for i in old.infolist() if i.filename != bundle_module.MANIFEST_NAME}
    for name in drop:
        members.pop(name, None)
        manifest.pop(name, None)
    if change:
        for name, data in change.items():
            members[name] = data
    for name, data in (extra or {}).items():
        members[name] = data
        manifest[name] = _md5(data)
    if manifest_change:
        manifest = manifest_change(manifest, members)
    with zipfile.ZipFile(target, "w") as new:
        for name, data in members.items():
            new.writestr(name, data)
        new.writestr(bundle_module.MANIFEST_NAME, json.dumps(manifest))
    return target


def _installed_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- the shipped checksums are the only authority --------------------------------------------------

@pytest.fixture
def hippocampus_copy(mirror, empty_data) -> Path:
    target = empty_data / H
    shutil.copytree(mirror / H, target)
    return target


def test_a_folder_cannot_bring_its_own_checksum_list(hippocampus_copy, capsys):
    victim = hippocampus_copy / "labelsTr" / "hippocampus_001.nii.gz"
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    listing = "".join(f"{hippocampus.md5sum(p)}  {p.relative_to(hippocampus_copy).as_posix()}\n"
                      for p in sorted(hippocampus_copy.rglob("*.nii.gz")))
    for name in (".course_manifest.md5", "MD5SUMS"):
        (hippocampus_copy / name).write_text(listing)
    assert hippocampus.hippocampus_status()[0] == "corrupt"
    assert cli.main(["verify"]) == 1
    assert "labelsTr/hippocampus_001.nii.gz" in capsys.readouterr().err


def test_bundle_with_tampered_label_and_matching_list_is_refused(official_bundle, tmp_path, capsys):
    name = f"{H}/labelsTr/hippocampus_001.nii.gz"
    with zipfile.ZipFile(official_bundle) as archive:
        tampered = archive.read(name)[:-10] + b"0123456789"
    with zipfile.ZipFile(official_bundle) as archive:
        digests = {n.removeprefix(f"{H}/"): _md5(archive.read(n)) for n in archive.namelist() if n.endswith(".nii.gz")}
    digests[name.removeprefix(f"{H}/")] = _md5(tampered)
    own_list = "".join(f"{digest}  {n}\n" for n, digest in digests.items()).encode()  # a list that "agrees"
    bad = _rewrite(official_bundle, tmp_path / "bad.zip", change={name: tampered},
                   extra={f"{H}/.course_manifest.md5": own_list, f"{H}/MD5SUMS": own_list},
                   manifest_change=lambda m, _: {**m, name: _md5(tampered)})
    room = tmp_path / "room"
    assert cli.main(["unbundle", str(bad), "--into", str(room)]) == 2
    assert "hippocampus_001" in capsys.readouterr().err
    assert _installed_files(room) == []


def test_bundle_with_only_dataset_json_does_not_replace_a_good_folder(mirror, tmp_path, capsys):
    room = tmp_path / "room"
    shutil.copytree(mirror / H, room / H)
    before = _installed_files(room)
    thin = tmp_path / "thin.zip"
    payload = (mirror / H / "dataset.json").read_bytes()
    with zipfile.ZipFile(thin, "w") as archive:
        archive.writestr(f"{H}/dataset.json", payload)
        archive.writestr(f"{H}/.course_manifest.md5", b"")  # an empty checksum list of its own
        archive.writestr(bundle_module.MANIFEST_NAME, json.dumps({f"{H}/dataset.json": _md5(payload),
                                                                  f"{H}/.course_manifest.md5": _md5(b"")}))
    assert cli.main(["unbundle", str(thin), "--into", str(room)]) == 2
    assert "nothing was installed" in capsys.readouterr().err
    assert _installed_files(room) == before
    assert hippocampus.verify_folder(room / H) == []


def test_unofficial_bundle_entries_are_never_installed(official_bundle, tmp_path, capsys):
    extra = {f"{H}/run_me.sh": b"rm -rf ~\n", f"{H}/.course_manifest.md5": b"0" * 32 + b"  x\n",
             f"{H}/imagesTr/notes.txt": b"hello"}
    sneaky = _rewrite(official_bundle, tmp_path / "sneaky.zip", extra=extra)
    room = tmp_path / "room"
    assert cli.main(["unbundle", str(sneaky), "--into", str(room)]) == 0
    out = capsys.readouterr().out
    assert "Ignored 3 entries" in out and "run_me.sh" in out
    installed = _installed_files(room)
    assert not any(name.endswith(("run_me.sh", ".course_manifest.md5", "notes.txt")) for name in installed)
    assert hippocampus.verify_folder(room / H) == []
    assert "medmnist/breastmnist.npz" in installed


def test_make_bundle_packs_only_official_files(official_bundle):
    with zipfile.ZipFile(official_bundle) as archive:
        names = [n for n in archive.namelist() if n.startswith(f"{H}/")]
    assert len(names) == len(hippocampus.shipped_manifest()) + 1  # + dataset.json
    assert not any(n.endswith(("README.md", "MD5SUMS")) for n in names)


def test_official_size_constant_matches_the_files(mirror):
    total = sum((mirror / H / name).stat().st_size for name in hippocampus.shipped_manifest())
    assert total == hippocampus.OFFICIAL_BYTES
    for path in (mirror / "medmnist").glob("*.npz"):
        flag, size = bundle_module._flag_and_size(path.name)
        assert path.stat().st_size <= medmnist_data.max_file_bytes(flag, size)


# --- label volumes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("label, message", [
    (np.full((4, 4, 4), 5, np.uint8) * np.array([0, 1, 1, 2], np.uint8), "label values \\[5, 10\\]"),
    (np.array([-1, 0, 1, 2] * 16, np.int16).reshape(4, 4, 4), "label values \\[-1\\]"),
    (np.zeros((4, 4, 3), np.uint8), "shape"),
])
def test_label_volumes_are_checked(label, message):
    with pytest.raises(CorruptDataError, match=message):
        hippocampus.check_label_volume(np.zeros((4, 4, 4), np.float32), label, "labelsTr/x.nii.gz")
    hippocampus.check_label_volume(np.zeros((4, 4, 4)), np.array([0, 1, 2, 0] * 16, np.uint8).reshape(4, 4, 4), "ok")


def test_load_case_refuses_labels_outside_0_1_2(hippocampus_copy, monkeypatch):
    import nibabel as nib

    name = "labelsTr/hippocampus_001.nii.gz"
    original = nib.load(hippocampus_copy / name)
    shifted = (np.asarray(original.dataobj).astype(np.uint8) * 3 + 5).astype(np.uint8)  # {5, 8, 11}
    nib.save(nib.Nifti1Image(shifted, original.affine, original.header), hippocampus_copy / name)
    manifest = {**hippocampus.shipped_manifest(), name: hippocampus.md5sum(hippocampus_copy / name)}
    monkeypatch.setattr(hippocampus, "shipped_manifest", lambda: manifest)  # even if its checksum matched
    with pytest.raises(CorruptDataError, match="label values \\[5, 8, 11\\]"):
        hippocampus.load_case(hippocampus_copy, "hippocampus_001")


# --- malformed and oversized bundles ---------------------------------------------------------------

def _zip(path: Path, members: dict[str, bytes], manifest) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if manifest is not None:
            archive.writestr(bundle_module.MANIFEST_NAME, manifest if isinstance(manifest, str) else json.dumps(manifest))
    return path


NPZ = "medmnist/breastmnist.npz"


@pytest.mark.parametrize("case, expected", [
    ("not a zip", "not a readable zip"),
    ("truncated", "not a readable zip"),
    ("no manifest", "no COURSE_BUNDLE.json"),
    ("manifest not json", "not valid JSON"),
    ("manifest a list", "must be a non-empty"),
    ("manifest checksum not md5", "not an MD5"),
    ("empty name", "unsafe or empty path"),
    ("path traversal", "unsafe or empty path"),
    ("missing member", "does not contain"),
    ("nested unknown folder", "unknown folder"),
    ("nested medmnist folder", "unexpected path"),
    ("unknown top folder", "unexpected path"),
    ("missing file", "There is no bundle"),
])
def test_malformed_bundles_give_one_line_errors(case, expected, tmp_path, capsys):
    path = tmp_path / "b.zip"
    data = b"x" * 100
    if case == "not a zip":
        path.write_bytes(b"this is not a zip file at all")
    elif case == "truncated":
        _zip(path, {NPZ: data}, {NPZ: _md5(data)})
        path.write_bytes(path.read_bytes()[:60])
    elif case == "no manifest":
        _zip(path, {NPZ: data}, None)
    elif case == "manifest not json":
        _zip(path, {NPZ: data}, "{not json")
    elif case == "manifest a list":
        _zip(path, {NPZ: data}, [NPZ])
    elif case == "manifest checksum not md5":
        _zip(path, {NPZ: data}, {NPZ: 42})
    elif case == "empty name":
        _zip(path, {NPZ: data}, {NPZ: _md5(data), "": _md5(b"")})
    elif case == "path traversal":
        _zip(path, {NPZ: data}, {NPZ: _md5(data), "medmnist/../../evil.npz": _md5(data)})
    elif case == "missing member":
        _zip(path, {}, {NPZ: _md5(data)})
    elif case == "nested unknown folder":
        _zip(path, {NPZ: data, f"{H}/evil/x.sh": data}, {NPZ: _md5(data)})
    elif case == "nested medmnist folder":
        _zip(path, {NPZ: data, "medmnist/sub/breastmnist.npz": data}, {NPZ: _md5(data)})
    elif case == "unknown top folder":
        _zip(path, {NPZ: data, "home/.bashrc": data}, {NPZ: _md5(data), "home/.bashrc": _md5(data)})
    else:
        path = tmp_path / "absent.zip"
    room = tmp_path / "room"
    assert cli.main(["unbundle", str(path), "--into", str(room)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err, err
    assert "Traceback" not in err
    assert _installed_files(room) == []


def test_bundle_declaring_more_than_the_official_size_is_refused_before_unpacking(tmp_path, monkeypatch, capsys):
    bomb = tmp_path / "bomb.zip"
    data = bytes(20_000_000)  # deflates to ~20 KB; breastmnist at 28 px is at most ~1.6 MB
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(NPZ, data)
        archive.writestr(bundle_module.MANIFEST_NAME, json.dumps({NPZ: _md5(data)}))
    assert bomb.stat().st_size < 200_000
    extracted = []
    monkeypatch.setattr(bundle_module, "_extract", lambda *a: extracted.append(a))
    assert cli.main(["unbundle", str(bomb), "--into", str(tmp_path / "room")]) == 2
    assert "more than the official files" in capsys.readouterr().err and not extracted


def test_bundle_larger_than_free_space_is_refused(official_bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bundle_module.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    room = tmp_path / "room"
    assert cli.main(["unbundle", str(official_bundle), "--into", str(room)]) == 2
    err = capsys.readouterr().err
    assert "MB free" in err and "--into" in err
    assert _installed_files(room) == []


# --- no data loss on a crash -----------------------------------------------------------------------

def test_replace_folder_killed_between_renames_keeps_the_old_copy(tmp_path):
    """kill -9 right after the old folder was moved aside: the next run puts it back."""
    target = tmp_path / H
    target.mkdir()
    (target / "good.txt").write_text("old data")
    new = tmp_path / "new"
    new.mkdir()
    (new / "good.txt").write_text("new data")
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from course_utils.data import staging
        calls = []
        original = Path.rename
        def rename(self, target):
            calls.append(target)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, target)
        Path.rename = rename
        staging.replace_folder(Path({str(new)!r}), Path({str(target)!r}))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    assert result.returncode == -9
    assert not target.exists() and [p.name for p in tmp_path.glob(f".{H}.*.old")]
    assert staging.clean_stale(tmp_path) == [f"restored {H}"]
    assert (target / "good.txt").read_text() == "old data"


def test_replace_folder_order_old_aside_new_in_old_deleted(tmp_path, monkeypatch):
    target, new = tmp_path / "data", tmp_path / "new"
    target.mkdir()
    new.mkdir()
    (new / "x").write_text("new")
    moves = []
    original = Path.rename
    monkeypatch.setattr(Path, "rename", lambda self, to: (moves.append((self.name, Path(to).name)), original(self, to))[1])
    staging.replace_folder(new, target)
    assert moves[0][0] == "data" and moves[0][1].endswith(".old") and moves[1] == ("new", "data")
    assert (target / "x").read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_stale_staging_files_of_dead_runs_are_cleaned_on_the_next_run(official_bundle, tmp_path):
    room = tmp_path / "room"
    (room / "medmnist").mkdir(parents=True)
    dead, alive = _dead_pid(), os.getppid()
    stale = [room / f".bundle.{dead}-0123abcd.unpacking", room / f".{H}.{dead}-89abcdef.unpacking",
             room / ".bundle.0badc0de.unpacking"]  # the last: an older course version's name (no pid)
    for folder in stale:
        (folder / "medmnist").mkdir(parents=True)
        (folder / "medmnist" / "big.npz").write_bytes(bytes(1000))
    part = room / "medmnist" / f".breastmnist.npz.{dead}-0123abcd.part"
    part.write_bytes(b"half")
    live = room / f".bundle.{alive}-fedcba98.unpacking"
    live.mkdir()
    bundle_module.unpack_bundle(official_bundle, room)
    assert not any(folder.exists() for folder in stale)
    assert live.exists(), "a running process's staging folder is left alone"
    download_module.clean_stale(room / "medmnist")
    assert not part.exists()


# --- the same folder everywhere --------------------------------------------------------------------

def test_relative_data_dir_is_read_from_the_repository_root(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    monkeypatch.setattr(locations, "repository_root", lambda: repo)
    monkeypatch.setenv("COURSE_DATA_DIR", "course-data")
    monkeypatch.chdir(repo / "notebooks")  # where a kernel starts
    assert locations.data_roots()[0] == repo / "course-data"
    monkeypatch.setenv("COURSE_DATA_DIR", "~/x")
    assert locations.data_roots()[0] == Path("~/x").expanduser().resolve()


@pytest.mark.parametrize("value, offline", [
    ("1", True), ("TRUE", True), ("yes", True), ("On", True), ("true", True),
    ("0", False), ("false", False), ("No", False), ("OFF", False), ("", False),
])
def test_course_offline_accepts_the_usual_spellings(value, offline, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", value)
    assert locations.network_allowed() is not offline


def test_course_offline_with_an_unclear_value_warns_and_stays_offline(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "please")
    with pytest.warns(UserWarning, match="not a yes/no value"):
        assert locations.network_allowed() is False


def _fake_npz() -> bytes:
    arrays = {}
    for split in medmnist_data.SPLITS:
        arrays[f"{split}_images"] = np.zeros((4, 28, 28), np.uint8)
        arrays[f"{split}_labels"] = np.zeros((4, 1), np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture
def shadowed(empty_data, tmp_path, monkeypatch):
    """A corrupt breastmnist.npz in COURSE_DATA_DIR and a good one further down the search path."""
    payload = _fake_npz()
    monkeypatch.setattr(medmnist_data, "official_url_md5", lambda flag, size: ("http://127.0.0.1:9/x", _md5(payload)))
    bad = empty_data / "medmnist" / "breastmnist.npz"
    bad.parent.mkdir()
    bad.write_bytes(payload[:-5])
    repo = tmp_path / "repo"
    good = repo / "data" / "medmnist" / "breastmnist.npz"
    good.parent.mkdir(parents=True)
    good.write_bytes(payload)
    monkeypatch.setattr(locations, "repository_root", lambda: repo)
    return bad, good


def test_a_corrupt_copy_does_not_shadow_a_good_one(shadowed, capsys):
    bad, good = shadowed
    with pytest.warns(UserWarning, match="Using the intact copy"):
        assert medmnist_data.ensure_file("breastmnist", 28, download=False) == good
    assert medmnist_data.medmnist_status("breastmnist", 28) == ("present", good)
    assert cli.main(["verify"]) == 1
    assert str(bad) in capsys.readouterr().err


# --- messages that lead somewhere ------------------------------------------------------------------

def test_offline_download_says_how_to_allow_the_network(empty_data, capsys):
    assert cli.main(["download", "breastmnist"]) == 1
    err = capsys.readouterr().err
    assert "unset COURSE_OFFLINE" in err and "COURSE_OFFLINE=0" in err


def _official_like_tar(source: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(source, arcname=H)
    return buffer.getvalue()


def test_a_hand_copied_archive_is_unpacked_when_its_md5_matches(mirror, empty_data, monkeypatch, capsys):
    payload = _official_like_tar(mirror / H)
    monkeypatch.setattr(hippocampus, "ARCHIVE_MD5", _md5(payload))
    with pytest.raises(DatasetNotFoundError, match=str(empty_data / hippocampus.ARCHIVE_NAME)):
        hippocampus.ensure_hippocampus(download=False)  # the message names the path to copy it to
    (empty_data / hippocampus.ARCHIVE_NAME).write_bytes(payload)
    folder = hippocampus.ensure_hippocampus(download=False)
    assert folder == empty_data / H and hippocampus.verify_folder(folder) == []
    assert "hand-copied archive" in capsys.readouterr().out


def test_a_hand_copied_archive_with_the_wrong_md5_is_refused(empty_data):
    (empty_data / hippocampus.ARCHIVE_NAME).write_bytes(b"not the archive")
    with pytest.raises(CorruptDataError, match="not the official Task04 archive"):
        hippocampus.ensure_hippocampus(download=False)
    assert not (empty_data / H).exists()


def test_verify_reports_a_missing_dataset_json(hippocampus_copy, capsys):
    (hippocampus_copy / "dataset.json").unlink()
    assert hippocampus.hippocampus_status() == ("corrupt", hippocampus_copy)
    assert cli.main(["verify"]) == 1
    assert "dataset.json" in capsys.readouterr().err


def test_status_and_verify_survive_an_unreadable_file(shadowed, monkeypatch, capsys):
    bad, good = shadowed
    real = medmnist_data.md5sum

    def refuse(path):
        if Path(path) == good:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(medmnist_data, "md5sum", refuse)
    medmnist_data._VERIFIED.clear()
    assert cli.main(["status"]) == 0
    assert "unreadable" in capsys.readouterr().out
    assert cli.main(["verify"]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images = load_classification_data("breastmnist", "train", 28, download=False)
    assert images.is_fallback, "a notebook falls back visibly instead of dying"


@pytest.mark.parametrize("where", ["a folder", "a file as data folder"])
def test_cli_turns_os_errors_into_messages(where, official_bundle, tmp_path, capsys):
    if where == "a folder":
        args = ["unbundle", str(tmp_path), "--into", str(tmp_path / "room")]
    else:
        (tmp_path / "file").write_text("x")
        args = ["unbundle", str(official_bundle), "--into", str(tmp_path / "file" / "room")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and str(tmp_path) in err


def test_download_size_zero_is_an_error(empty_data, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["download", "breastmnist", "--size", "0"])
    assert info.value.code == 2 and "positive number of pixels" in capsys.readouterr().err


def test_download_has_an_overall_deadline(empty_data, file_server):
    payload = b"x" * (3 << 20)
    url = file_server("/slow.npz", payload)
    target = empty_data / "medmnist" / "slow.npz"
    with pytest.raises(DatasetNotFoundError, match="deadline"):
        download_module.download_file(url, target, _md5(payload), fix_hint="`retry`", deadline_s=0.0)
    assert list(target.parent.iterdir()) == []


def test_download_disk_full_says_disk_not_network(empty_data, file_server, monkeypatch):
    payload = b"y" * 1000
    url = file_server("/full.npz", payload)

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_module.os, "fsync", full)
    target = empty_data / "medmnist" / "full.npz"
    with pytest.raises(UnreadableDataError, match="disk is full") as info:
        download_module.download_file(url, target, _md5(payload), fix_hint="`retry`")
    assert "network" not in str(info.value)
    assert list(target.parent.iterdir()) == []


# --- review follow-ups -----------------------------------------------------------------------------

def test_repository_root_is_found_from_any_folder(tmp_path, monkeypatch):
    import course_utils

    monkeypatch.chdir(tmp_path)
    assert locations.repository_root() == Path(course_utils.__file__).resolve().parents[1]


def test_many_hippocampus_entries_cannot_add_up_to_gigabytes(tmp_path, monkeypatch, capsys):
    names = sorted(hippocampus.shipped_manifest())[:40]
    declared = {f"{H}/{name}": hippocampus.OFFICIAL_BYTES // 2 for name in names}  # each far above any real file
    assert sum(declared.values()) > 10 * hippocampus.OFFICIAL_BYTES
    bomb = tmp_path / "many.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, size in declared.items():
            archive.writestr(name, bytes(size))
        archive.writestr(bundle_module.MANIFEST_NAME, json.dumps({n: "0" * 32 for n in declared}))
    monkeypatch.setattr(bundle_module, "_extract", lambda *a: pytest.fail("must refuse before extracting"))
    assert cli.main(["unbundle", str(bomb), "--into", str(tmp_path / "room")]) == 2
    assert "more than the official files" in capsys.readouterr().err


def test_an_oversized_manifest_is_not_read(tmp_path, capsys):
    path = tmp_path / "big-manifest.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(bundle_module.MANIFEST_NAME, "{" + " " * (3 << 20) + "}")
    assert cli.main(["unbundle", str(path), "--into", str(tmp_path / "room")]) == 2
    assert "far more than a list" in capsys.readouterr().err


def test_a_deeply_nested_manifest_is_a_message(tmp_path, capsys):
    path = tmp_path / "nested.zip"
    _zip(path, {}, "[" * 100_000 + "]" * 100_000)
    assert cli.main(["unbundle", str(path), "--into", str(tmp_path / "room")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_corrupt_compressed_data_is_a_message(official_bundle, tmp_path, capsys):
    source = tmp_path / "deflated.zip"
    with zipfile.ZipFile(official_bundle) as old, zipfile.ZipFile(source, "w", compression=zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            if item.filename in (NPZ, bundle_module.MANIFEST_NAME):
                new.writestr(item.filename, old.read(item))
    raw = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo(NPZ)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for offset in range(start + 100, start + 100 + 64):  # scramble the middle of the deflate stream
        raw[offset] ^= 0xFF
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(raw))
    assert cli.main(["unbundle", str(broken), "--into", str(tmp_path / "room")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "\n" not in err.strip()


def test_an_unreadable_copy_is_reported_not_a_crash(shadowed, monkeypatch):
    bad, good = shadowed
    real_is_file, real_stat = Path.is_file, Path.stat

    def refuse(real):
        def wrapped(self, *args, **kwargs):
            if self == bad:  # as in a folder the learner may not read: Python 3.11 raises instead of saying False
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(Path, "is_file", refuse(real_is_file))
    monkeypatch.setattr(Path, "stat", refuse(real_stat))
    medmnist_data._VERIFIED.clear()
    with pytest.warns(UserWarning, match="cannot be read"):
        assert medmnist_data.ensure_file("breastmnist", 28, download=False) == good


def test_a_corrupt_hand_copied_archive_does_not_hide_a_good_one(mirror, empty_data, tmp_path, monkeypatch):
    payload = _official_like_tar(mirror / H)
    monkeypatch.setattr(hippocampus, "ARCHIVE_MD5", _md5(payload))
    (empty_data / hippocampus.ARCHIVE_NAME).write_bytes(b"truncated")
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / hippocampus.ARCHIVE_NAME).write_bytes(payload)
    monkeypatch.setattr(locations, "repository_root", lambda: repo)
    with pytest.warns(UserWarning, match="Using the intact archive"):
        folder = hippocampus.ensure_hippocampus(download=False)
    assert hippocampus.verify_folder(folder) == []


def test_an_intact_later_hippocampus_folder_wins_over_a_broken_earlier_one(hippocampus_copy, mirror, tmp_path,
                                                                          monkeypatch):
    (hippocampus_copy / "labelsTr" / "hippocampus_001.nii.gz").unlink()
    repo = tmp_path / "repo"
    shutil.copytree(mirror / H, repo / "data" / H)
    monkeypatch.setattr(locations, "repository_root", lambda: repo)
    with pytest.warns(UserWarning, match="was skipped"):
        assert hippocampus.ensure_hippocampus(download=False) == repo / "data" / H
