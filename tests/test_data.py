"""The data layer: search order, checksums, downloads, fallbacks, slices, bundles and the command line."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils import locations
from course_utils.data import (
    CorruptDataError,
    DatasetNotFoundError,
    UnknownDatasetError,
    hippocampus,
    load_classification_data,
    load_medmnist,
    medmnist_data,
    mni152_slices,
)
from course_utils.data import __main__ as cli
from course_utils.data import bundle as bundle_module
from course_utils.report import read_report


def fake_medmnist_bytes(n: int = 6, rgb: bool = False) -> bytes:
    """A small .npz in MedMNIST's layout."""
    shape = (n, 28, 28, 3) if rgb else (n, 28, 28)
    rng = np.random.default_rng(0)
    arrays = {}
    for split in medmnist_data.SPLITS:
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture
def fake_breastmnist(empty_data, monkeypatch):
    """A synthetic breastmnist.npz whose 'official' MD5 is patched to match it."""
    payload = fake_medmnist_bytes()
    digest = hashlib.md5(payload).hexdigest()
    monkeypatch.setattr(medmnist_data, "official_url_md5", lambda flag, size: ("http://127.0.0.1:9/none", digest))
    path = empty_data / "medmnist" / "breastmnist.npz"
    path.parent.mkdir()
    path.write_bytes(payload)
    return path


# --- where data is looked for -------------------------------------------------------------------

def test_search_order_puts_course_data_dir_first(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "mine"))
    dirs = locations.medmnist_dirs()
    assert dirs[0] == (tmp_path / "mine" / "medmnist").resolve()
    assert dirs[1].parent.name == "data"
    assert dirs[-1] == locations.medmnist_default_dir()


def test_file_names_follow_medmnist_scheme():
    assert medmnist_data.file_name("pneumoniamnist", 28) == "pneumoniamnist.npz"
    assert medmnist_data.file_name("PneumoniaMNIST", 64) == "pneumoniamnist_64.npz"
    assert medmnist_data.official_url_md5("breastmnist", 64)[1] == "742edef2a1fd1524b2efff4bd7ba9364"


# --- bad input gives errors that say what was wrong and how to fix it -------------------------------

def test_unknown_dataset_names_the_value_and_the_alternatives():
    with pytest.raises(UnknownDatasetError, match=r"'xraymnist'.*pneumoniamnist"):
        load_medmnist("xraymnist")


def test_unknown_size_lists_the_published_sizes():
    with pytest.raises(UnknownDatasetError, match=r"28, 64, 128, 224; size=32"):
        load_medmnist("breastmnist", size=32)
    with pytest.raises(UnknownDatasetError, match=r"28, 64"):
        load_medmnist("adrenalmnist3d", size=128)


def test_wrong_split_is_rejected_before_any_file_is_read(empty_data):
    with pytest.raises(UnknownDatasetError, match=r"'training'.*train, val, test"):
        load_medmnist("breastmnist", split="training")


def test_missing_dataset_offline_says_where_it_looked_and_how_to_fix(empty_data):
    with pytest.raises(DatasetNotFoundError) as info:
        load_medmnist("breastmnist", size=64)
    message = str(info.value)
    assert "breastmnist_64.npz" in message
    assert str(empty_data / "medmnist") in message
    assert "python -m course_utils.data download breastmnist --size 64" in message
    assert "zenodo.org" in message


def test_synthetic_file_loads_as_uint8_tensors(fake_breastmnist):
    data = load_medmnist("breastmnist", "val")
    assert data.images.dtype == torch.uint8 and data.images.shape == (6, 1, 28, 28)
    assert data.labels.dtype == torch.int64 and data.labels.shape == (6,)
    assert data.class_names == ("malignant", "normal, benign")


def test_truncated_file_is_rejected_and_never_loaded(fake_breastmnist, monkeypatch):
    fake_breastmnist.write_bytes(fake_breastmnist.read_bytes()[:1000])
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("a corrupt file must not be read"))
    with pytest.raises(CorruptDataError) as info:
        load_medmnist("breastmnist")
    assert str(fake_breastmnist) in str(info.value)
    assert "python -m course_utils.data download breastmnist --size 28" in str(info.value)


def test_tampered_file_with_same_size_is_rejected(fake_breastmnist):
    payload = bytearray(fake_breastmnist.read_bytes())
    payload[-10] ^= 0xFF
    fake_breastmnist.write_bytes(bytes(payload))
    with pytest.raises(CorruptDataError, match="does not match the official MD5"):
        load_medmnist("breastmnist")


# --- downloads -----------------------------------------------------------------------------------

def _patch_registry(monkeypatch, url: str, payload: bytes) -> None:
    digest = hashlib.md5(payload).hexdigest()
    monkeypatch.setattr(medmnist_data, "official_url_md5", lambda flag, size: (url, digest))


def test_download_lands_under_real_name_after_checksum(empty_data, monkeypatch, file_server):
    payload = fake_medmnist_bytes()
    _patch_registry(monkeypatch, file_server("/breastmnist.npz", payload), payload)
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    data = load_medmnist("breastmnist", "test")
    assert len(data) == 6
    assert (empty_data / "medmnist" / "breastmnist.npz").read_bytes() == payload


def test_download_interrupted_halfway_leaves_nothing_that_passes(empty_data, monkeypatch, file_server):
    payload = fake_medmnist_bytes()
    url = file_server("/breastmnist.npz", payload[: len(payload) // 2], declared_length=len(payload))
    _patch_registry(monkeypatch, url, payload)
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    with pytest.raises((DatasetNotFoundError, CorruptDataError)):
        load_medmnist("breastmnist")
    leftovers = list((empty_data / "medmnist").glob("*")) if (empty_data / "medmnist").exists() else []
    assert leftovers == [], f"an interrupted download left {leftovers}"


def test_download_with_wrong_checksum_is_discarded(empty_data, monkeypatch, file_server):
    payload = fake_medmnist_bytes()
    url = file_server("/breastmnist.npz", payload + b"tampered")
    _patch_registry(monkeypatch, url, payload)
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    with pytest.raises(CorruptDataError, match="MD5"):
        load_medmnist("breastmnist")
    assert not any((empty_data / "medmnist").glob("*"))


def test_no_network_gives_a_clear_error(empty_data, monkeypatch):
    payload = fake_medmnist_bytes()
    _patch_registry(monkeypatch, "http://127.0.0.1:9/breastmnist.npz", payload)  # port 9: nothing listens
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    with pytest.raises(DatasetNotFoundError, match=r"download failed.*bundle"):
        load_medmnist("breastmnist")


# --- the mirror and the nilearn fallback both load ---------------------------------------------

@pytest.mark.parametrize("flag,size", [("breastmnist", 28), ("pneumoniamnist", 28), ("retinamnist", 28),
                                       ("adrenalmnist3d", 28), ("breastmnist", 64)])
def test_mirror_matches_medmnist_reference_loader(mirror, monkeypatch, flag, size):
    import medmnist

    monkeypatch.setenv("COURSE_DATA_DIR", str(mirror))
    ours = load_medmnist(flag, "train", size=size, download=False)
    reference = getattr(medmnist, medmnist.INFO[flag]["python_class"])(
        split="train", root=str(mirror / "medmnist"), size=size, download=False
    )
    expected = torch.from_numpy(reference.imgs)
    if expected.ndim == 4 and not medmnist_data.is_3d(flag):
        expected = expected.permute(0, 3, 1, 2)
    else:
        expected = expected.unsqueeze(1)
    assert torch.equal(ours.images, expected)
    assert torch.equal(ours.labels, torch.from_numpy(reference.labels[:, 0].astype(np.int64)))
    assert len(ours) == medmnist.INFO[flag]["n_samples"]["train"]


def test_fallback_to_mni152_is_visible_and_recorded(empty_data, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_REPORT_PATH", str(tmp_path / "report.jsonl"))
    data = load_classification_data("pneumoniamnist", "train", size=28)
    assert data.is_fallback and data.images.shape[1:] == (1, 28, 28)
    assert set(data.class_names) == {"inferior", "middle", "superior"}
    assert "FALLBACK: pneumoniamnist@28" in capsys.readouterr().out
    assert read_report(tmp_path / "report.jsonl")[0]["kind"] == "fallback"


def test_mni152_slices_labels_masks_and_gapped_splits():
    full = mni152_slices(size=32, axis=2)
    assert full.images.dtype == torch.uint8 and full.images.shape[1:] == (1, 32, 32)
    assert set(full.masks.unique().tolist()) == {0, 1, 2}
    counts = list(full.class_counts().values())
    assert max(counts) - min(counts) <= 1  # levels are equal thirds of the brain
    parts = {s: set(mni152_slices(size=32, axis=2, split=s).groups.tolist()) for s in ("train", "val", "test")}
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"])
    for index in parts["test"]:  # no test slice has a training neighbour
        assert index - 1 not in parts["train"] and index + 1 not in parts["train"]
    with pytest.raises(UnknownDatasetError, match="axis=3"):
        mni152_slices(axis=3)



@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mni152_slices_cut_the_planes_of_their_axis(axis, monkeypatch):
    # a random Fortran-ordered template (as nilearn's arrays are): every slice must be np.take's plane, in place
    from course_utils.data import mni152
    from course_utils.data.slicing import pad_to_square, resize_masks, rotate_up

    shape = (20, 24, 22)
    rng = np.random.default_rng(0)
    brain = np.zeros(shape, np.uint8)
    brain[2:18, 3:21, 2:20] = 1
    tissue = np.asfortranarray(rng.integers(0, 3, shape, dtype=np.uint8))
    volumes = {"t1": np.asfortranarray(rng.integers(0, 256, shape, dtype=np.uint8)), "brain": brain, "tissue": tissue}
    monkeypatch.setattr(mni152, "load_mni152_volumes", lambda: volumes)
    data = mni152.mni152_slices(size=16, axis=axis, min_brain_fraction=0.5)
    boxes = {0: (2, 18), 1: (3, 21), 2: (2, 20)}
    assert data.groups.tolist() == list(range(*boxes[axis]))
    crop = [slice(*boxes[a]) for a in range(3) if a != axis]
    planes = np.stack([rotate_up(np.take(tissue, i, axis=axis)[crop[0], crop[1]]) for i in data.groups.tolist()])
    expected = torch.from_numpy(planes)[:, None]
    expected = resize_masks(pad_to_square(expected, max(expected.shape[-2:])), 16)
    assert torch.equal(data.masks, expected)

# --- MSD Task04 hippocampus --------------------------------------------------------------------

def test_hippocampus_mirror_loads_with_masks(mirror, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(mirror))
    folder = hippocampus.ensure_hippocampus(download=False)
    cases = hippocampus.case_ids(folder)
    assert len(cases) == 260
    slices = hippocampus.hippocampus_slices(folder, cases[:2], size=32)
    assert slices.images.shape[1:] == (1, 32, 32) and slices.masks.shape == slices.images.shape
    assert set(slices.masks.unique().tolist()) == {0, 1, 2}
    assert set(slices.groups.tolist()) == {0, 1}


@pytest.fixture
def hippocampus_copy(mirror, empty_data) -> Path:
    target = empty_data / hippocampus.FOLDER
    shutil.copytree(mirror / hippocampus.FOLDER, target)
    return target


def test_tampered_hippocampus_file_is_refused(hippocampus_copy):
    victim = hippocampus_copy / "labelsTr" / "hippocampus_001.nii.gz"
    victim.write_bytes(victim.read_bytes()[:-50])
    assert hippocampus.hippocampus_status()[0] == "corrupt"
    with pytest.raises(CorruptDataError, match="labelsTr/hippocampus_001.nii.gz"):
        hippocampus.ensure_hippocampus(download=False)
    with pytest.raises(CorruptDataError, match="hippocampus_001"):
        hippocampus.load_case(hippocampus_copy, "hippocampus_001")


def _official_like_tar(source: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """A tar in the Decathlon's layout, with a macOS `._` file as the real archive has."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(source, arcname=hippocampus.FOLDER)
        for name, data in {f"{hippocampus.FOLDER}/._dataset.json": b"junk", **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_hippocampus_download_checks_archive_and_unpacks(mirror, empty_data, monkeypatch, file_server):
    payload = _official_like_tar(mirror / hippocampus.FOLDER)
    monkeypatch.setattr(hippocampus, "ARCHIVE_URL", file_server("/Task04_Hippocampus.tar", payload))
    monkeypatch.setattr(hippocampus, "ARCHIVE_MD5", hashlib.md5(payload).hexdigest())
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    folder = hippocampus.ensure_hippocampus()
    assert folder == empty_data / hippocampus.FOLDER
    assert not (folder / "._dataset.json").exists()
    assert not (folder / ".course_manifest.md5").exists(), "the shipped list is the only authority"
    assert hippocampus.hippocampus_status() == ("present", folder)
    assert sorted(p.name for p in empty_data.iterdir()) == [hippocampus.FOLDER]  # no archive, no staging left


def test_archive_with_path_traversal_is_refused(mirror, empty_data, tmp_path):
    archive = tmp_path / "evil.tar"
    archive.write_bytes(_official_like_tar(mirror / hippocampus.FOLDER, {"../escape.txt": b"x"}))
    with pytest.raises(CorruptDataError, match="unsafe path"):
        hippocampus.unpack_archive(archive, empty_data)
    assert not (empty_data / hippocampus.FOLDER).exists() and not (tmp_path / "escape.txt").exists()


# --- bundles and the command line ----------------------------------------------------------------

def test_bundle_round_trip_and_tampered_bundle(mirror, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_DATA_DIR", str(mirror))
    out = tmp_path / "room.zip"
    assert cli.main(["bundle", str(out)]) == 0
    room = tmp_path / "room-data"
    assert cli.main(["unbundle", str(out), "--into", str(room)]) == 0
    assert (room / "medmnist" / "breastmnist.npz").read_bytes() == (mirror / "medmnist" / "breastmnist.npz").read_bytes()
    assert hippocampus.verify_folder(room / hippocampus.FOLDER) == []

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(out) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "medmnist/breastmnist.npz":
                data = data[:-1] + bytes([data[-1] ^ 1])
            target.writestr(item, data)
    other = tmp_path / "other-room"
    assert cli.main(["unbundle", str(tampered), "--into", str(other)]) == 2
    assert "medmnist/breastmnist.npz" in capsys.readouterr().err
    assert not (other / "medmnist").exists(), "a bad bundle must install nothing"


def test_cli_status_and_verify(fake_breastmnist, capsys):
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "breastmnist" in out and "CC BY 4.0" in out and "built-in" in out
    fake_breastmnist.write_bytes(b"not a zip")
    assert cli.main(["verify"]) == 1
    assert "Corrupt: breastmnist" in capsys.readouterr().err


def test_cli_download_unknown_name_fails_cleanly(empty_data, capsys):
    assert cli.main(["download", "nosuchmnist"]) == 1
    assert "Unknown MedMNIST dataset 'nosuchmnist'" in capsys.readouterr().err


def test_bundle_manifest_lists_checksums(mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(mirror))
    out = tmp_path / "b.zip"
    manifest = bundle_module.make_bundle(out)
    with zipfile.ZipFile(out) as archive:
        assert json.loads(archive.read(bundle_module.MANIFEST_NAME)) == manifest
    assert manifest["medmnist/breastmnist.npz"] == "750601b1f35ba3300ea97c75c52ff8f6"
