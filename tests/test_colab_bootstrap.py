"""The Setup cell's Colab bootstrap, run as on Colab: outside any clone, with `google.colab` importable.

A fake `google.colab` package, a working folder outside the repository, and a `file://` URL of a temporary git
repository (a copy of this checkout's package) stand in for Colab and GitHub. The bootstrap runs in a fresh
virtual environment that sees this environment's libraries (torch, pip, setuptools, ...) but not the installed
`course_utils`, so it really has to clone, pip-install and import the package. Nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv

import nbformat
import pytest

from course_utils.runner import REPO_ROOT, course_notebooks

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import stamp_colab  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _bootstrap_code(clone_url: str) -> str:
    """The bootstrap of notebook 00's Setup cell (with its imports), cloning from `clone_url` instead of GitHub."""
    path = course_notebooks(REPO_ROOT / "notebooks")[0]
    notebook = nbformat.read(path, as_version=4)
    setup = notebook.cells[stamp_colab.setup_cell_index(notebook)].source
    start = setup.index(stamp_colab.BOOTSTRAP_BEGIN)
    block = setup[start:setup.index(stamp_colab.BOOTSTRAP_END, start)]
    url = stamp_colab.repository_url()
    assert block.count(f'"{url}"') == 1, "the bootstrap names the repository once, from pyproject.toml"
    return "\n".join(stamp_colab.BOOTSTRAP_IMPORTS) + "\n" + block.replace(f'"{url}"', repr(clone_url))


def _git(*args, cwd) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """(python of a fresh venv without course_utils, env with a fake google.colab, working folder, clone URL)."""
    root = tmp_path_factory.mktemp("colab")
    origin = root / "origin"  # the "GitHub" repository: this checkout's package, committed
    origin.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "LICENSE-CONTENT"):
        shutil.copy2(REPO_ROOT / name, origin / name)
    shutil.copytree(REPO_ROOT / "course_utils", origin / "course_utils",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (origin / "notebooks").mkdir()
    (origin / "notebooks" / "README.md").write_text("notebooks live here\n")
    _git("init", "-q", "-b", "main", cwd=origin)
    _git("add", ".", cwd=origin)
    _git("commit", "-q", "-m", "course", cwd=origin)
    _git("commit", "-q", "--allow-empty", "-m", "second commit (a shallow clone has only this one)", cwd=origin)

    env_dir = root / "venv"  # a fresh environment that sees our libraries but not our course_utils
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # a plain path line: our site-packages' own .pth files (the editable course_utils) are not processed
    with open(os.path.join(site, "course-libraries.pth"), "w") as pth:
        pth.write(sysconfig.get_paths()["purelib"] + "\n")

    fake = root / "fake-colab"  # `google.colab` importable, as on Colab (a namespace portion: no google/__init__)
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "colab" / "__init__.py").write_text('"""A stand-in for Colab\'s module."""\n')
    work = root / "content"  # Colab's working folder: outside any clone
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONNOUSERSITE="1", HOME=str(root))
    return python, env, fake, work, f"file://{origin}"


def _run(python, code, env, cwd):
    return subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_fresh_environment_cannot_import_course_utils(colab):
    python, env, _, work, _ = colab
    probe = _run(python, "import importlib.util, numpy; print(importlib.util.find_spec('course_utils'))", env, work)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "None", "the test environment must not see the installed course_utils"


def test_outside_a_clone_and_not_on_colab_the_cell_says_how_to_get_the_course(colab):
    python, env, _, work, url = colab
    result = _run(python, _bootstrap_code(url), env, work)
    assert result.returncode != 0
    assert "ModuleNotFoundError: course_utils is not installed" in result.stderr
    assert url in result.stderr, "the message names the repository to clone"
    assert not (work / "course").exists(), "nothing is cloned outside Colab"


def test_on_colab_the_cell_clones_installs_and_imports_the_course(colab):
    python, env, fake, work, url = colab
    colab_env = {**env, "PYTHONPATH": str(fake)}
    check = "\nimport course_utils, course_utils.locations as loc\nprint('IMPORTED', course_utils.__file__)"
    check += "\nprint('ROOT', loc.repository_root())"
    result = _run(python, _bootstrap_code(url) + check, colab_env, work)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    clone = work / "course"
    assert f"Colab: cloning {url} (latest commit only) into {clone} ..." in out
    assert f"Installing course_utils from {clone} with pip" in out
    assert out.index("Colab: cloning") < out.index("Installing") < out.index("IMPORTED"), "it says, then does"
    assert f"IMPORTED {clone / 'course_utils' / '__init__.py'}" in out
    assert f"ROOT {clone}" in out, "data and checkpoints default to folders in the clone"
    assert _git("rev-parse", "--is-shallow-repository", cwd=clone).strip() == "true"
    assert _git("rev-list", "--count", "HEAD", cwd=clone).strip() == "1"

    again = _run(python, _bootstrap_code(url) + check, colab_env, work)  # the next notebook, a new kernel
    assert again.returncode == 0, again.stderr
    assert "cloning" not in again.stdout and "Installing" not in again.stdout, "installed: nothing to do"
    assert f"IMPORTED {clone / 'course_utils' / '__init__.py'}" in again.stdout
