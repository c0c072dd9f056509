"""`make course`'s runner executes notebooks in order, survives a failing one, and reports fallbacks."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from course_utils import runner


def _write(path, *sources):
    notebook = new_notebook(cells=[new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_run_course_reports_headline_fallback_and_failure(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write(notebooks / "00_good.ipynb",
           "import os\nfrom course_utils.report import headline, note_fallback\n"
           "note_fallback('breastmnist@28', 'mni152', 'offline')\nheadline(f\"profile {os.environ['COURSE_PROFILE']}\")")
    _write(notebooks / "01_bad.ipynb", "raise ValueError('broken on purpose')")
    _write(notebooks / "02_after.ipynb", "print('still runs')")
    build = tmp_path / "build"
    runs = runner.run_course("smoke", [], build, notebooks_dir=notebooks)
    assert [r.name for r in runs] == ["00_good", "01_bad", "02_after"]
    assert [r.status for r in runs] == ["ok", "failed: CellExecutionError", "ok"]
    assert runs[0].headline == "profile smoke"
    assert runs[0].fallbacks == ("breastmnist@28->mni152",)
    assert (build / "00_good.html").read_text().count("profile smoke") >= 1
    assert (build / "01_bad.ipynb").exists(), "a failed notebook is still written, with its error"


def test_strip_outputs_removes_every_output():
    notebook = new_notebook(cells=[new_code_cell("print(1)\nassert 1 == 1"), new_code_cell("print(2)")])
    for cell in notebook.cells:
        cell.execution_count = 3
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
    cleaned = runner.strip_outputs(notebook)
    assert [len(c.outputs) for c in cleaned.cells] == [0, 0]
    assert [c.execution_count for c in cleaned.cells] == [None, None]


def test_figures_are_embedded_even_when_the_shell_sets_agg(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # CI and headless shells set this; make course must still show figures
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write(notebooks / "00_plot.ipynb",
           "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.title('t')\nplt.show()")
    runner.run_course("smoke", [], tmp_path / "build", notebooks_dir=notebooks)
    executed = nbformat.read(tmp_path / "build" / "00_plot.ipynb", as_version=4)
    images = [o for o in executed.cells[0].outputs if "image/png" in o.get("data", {})]
    assert images, "the figure is missing from the executed notebook"
    assert runner.os.environ["MPLBACKEND"] == "Agg", "the caller's environment is restored"
