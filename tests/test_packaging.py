"""pyproject.toml, environment.yml and constraints.txt stay in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~ \[]", r.strip(), maxsplit=1)[0].lower() for r in requirements if r.strip()}


def test_environment_yml_lists_every_requirement():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"]) | _names(project["optional-dependencies"]["dev"])
    text = (ROOT / "environment.yml").read_text()
    listed = set(re.findall(r"^\s*-\s+([A-Za-z0-9_.-]+)", text, flags=re.M))
    missing = sorted(name for name in wanted if name not in {n.lower() for n in listed})
    assert not missing, f"environment.yml lacks {missing}"


def test_requirements_are_loose_and_ci_pins_torch_pair():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = [r for r in project["dependencies"] if "==" in r]
    assert not pinned, f"keep the package's requirements loose (Colab keeps its torch): {pinned}"
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==\d", constraints, re.M) and re.search(r"^torchvision==\d", constraints, re.M)
    if not project["requires-python"].startswith(">=3.10"):
        pytest.fail("Python >= 3.10 is the documented floor")


def test_metadata_licence_authors_and_urls():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT", "an SPDX string (the table form is deprecated)"
    assert all((ROOT / name).is_file() for name in project["license-files"])
    assert "CC BY 4.0" in (ROOT / "LICENSE-CONTENT").read_text() and "MIT" in (ROOT / "LICENSE").read_text()
    assert project["authors"] and project["urls"]["Repository"].startswith("https://github.com/")
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77 for r in build), build


def test_ipywidgets_floor_allows_colab_7():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    widgets = next(r for r in project["dependencies"] if r.startswith("ipywidgets"))
    assert widgets.split("#")[0].strip() == "ipywidgets>=7.6", "Colab ships ipywidgets 7.7"
    assert re.search(r"^\s*- ipywidgets>=7\.6\s*$", (ROOT / "environment.yml").read_text(), re.M)
