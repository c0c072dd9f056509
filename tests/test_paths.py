"""Checkpoint folders: a relative `COURSE_CHECKPOINT_DIR` means the same folder from the CLI and the notebooks."""

from __future__ import annotations

from course_utils import locations


def _fake_repo(tmp_path, monkeypatch):
    repo = tmp_path.resolve() / "repo"
    (repo / "notebooks").mkdir(parents=True)
    monkeypatch.setattr(locations, "repository_root", lambda: repo)
    return repo


def test_relative_checkpoint_dir_resolves_against_the_repository(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path, monkeypatch)
    monkeypatch.setenv(locations.CHECKPOINT_ENV, "runs/ck")
    monkeypatch.chdir(repo / "notebooks")  # where the notebook kernels start
    assert locations.checkpoint_root() == repo / "runs" / "ck"
    monkeypatch.chdir(repo)  # where the CLI runs
    assert locations.checkpoint_root() == repo / "runs" / "ck"
    assert (repo / "runs" / "ck").is_dir()
    assert not (repo / "notebooks" / "runs").exists()


def test_relative_checkpoint_dir_without_a_repository_uses_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(locations, "repository_root", lambda: None)
    monkeypatch.setenv(locations.CHECKPOINT_ENV, "ck")
    monkeypatch.chdir(tmp_path)
    assert locations.checkpoint_root() == tmp_path.resolve() / "ck"


def test_checkpoint_dir_expands_home_and_keeps_absolute_paths(tmp_path, monkeypatch):
    _fake_repo(tmp_path, monkeypatch)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(locations.CHECKPOINT_ENV, "~/ck")
    assert locations.checkpoint_root() == (tmp_path / "home" / "ck").resolve()
    monkeypatch.setenv(locations.CHECKPOINT_ENV, str(tmp_path / "abs"))
    assert locations.checkpoint_root() == (tmp_path / "abs").resolve()


def test_unset_checkpoint_dir_is_checkpoints_in_the_repository(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path, monkeypatch)
    monkeypatch.delenv(locations.CHECKPOINT_ENV, raising=False)
    monkeypatch.chdir(repo / "notebooks")
    assert locations.checkpoint_root() == repo / "checkpoints"
