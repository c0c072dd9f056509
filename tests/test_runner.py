"""`make course`'s runner executes notebooks in order, survives a failing one, and reports fallbacks."""

from __future__ import annotations

import re

import nbformat
import pytest
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
    assert [r.status for r in runs] == ["ok", "failed: ValueError: broken on purpose", "ok"]
    assert runs[0].headline == "profile smoke"
    assert runs[0].fallbacks == ("breastmnist@28->mni152",)
    assert (build / "00_good.html").read_text().count("profile smoke") >= 1
    assert (build / "01_bad.ipynb").exists(), "a failed notebook is still written, with its error"


def test_strip_outputs_removes_every_output():
    notebook = new_notebook(cells=[new_code_cell("print(1)\nassert 1 == 1"), new_code_cell("print(2)")])
    for cell in notebook.cells:
        cell.execution_count = 3
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    cleaned = runner.strip_outputs(notebook)
    assert [len(c.outputs) for c in cleaned.cells] == [0, 0]
    assert "widgets" not in cleaned.metadata
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


def test_summary_gives_the_exception_text_on_one_line(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write(notebooks / "00_boom.ipynb", "raise ValueError('boom: a|b\\nsecond line')")
    runs = runner.run_course("smoke", [], tmp_path / "build", notebooks_dir=notebooks)
    summary = runner.format_summary(runs, "smoke")
    row = next(line for line in summary.splitlines() if line.startswith("| 00_boom |"))
    assert "failed: ValueError: boom: a\\|b" in row, row
    assert "second line" not in summary, "the status stays on one line"
    assert len(re.findall(r"(?<!\\)\|", row)) == 6, f"a '|' in the error broke the Markdown table: {row}"


class _FakeCellError(Exception):
    """Stands in for nbclient's CellExecutionError: the kernel's exception name and value as attributes."""

    def __init__(self, ename, evalue):
        super().__init__("Traceback (most recent call last):\n  ... a long traceback ...")
        self.ename, self.evalue = ename, evalue


def test_failure_reason_uses_ename_and_evalue_else_the_first_line():
    assert runner.failure_reason(_FakeCellError("ValueError", "shapes differ")) == "ValueError: shapes differ"
    assert runner.failure_reason(_FakeCellError("KeyboardInterrupt", "")) == "KeyboardInterrupt"
    assert runner.failure_reason(RuntimeError("Kernel died\nmore detail")) == "RuntimeError: Kernel died"
    assert runner.failure_reason(TimeoutError()) == "TimeoutError"
    long = runner.failure_reason(ValueError("x" * 1000))
    assert len(long) <= 200 and long.startswith("ValueError: xxx") and long.endswith("…")


def test_summary_cells_escape_pipes_and_newlines():
    runs = [runner.NotebookRun("00_x", "failed: ValueError: a|b", 1.0, "FID 3 | IS 2\nmore", ())]
    row = runner.format_summary(runs, "smoke").splitlines()[-1]
    assert row == "| 00_x | failed: ValueError: a\\|b | 1.0 s | FID 3 \\| IS 2 more | as planned |"


def test_empty_only_prefix_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "execute_notebook", lambda *a, **k: pytest.fail("'' matched every notebook"))
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--profile", "smoke", "--only", "", "--build-dir", str(tmp_path / "build")])
    assert exit_info.value.code == 2
    assert "--only: an empty prefix" in capsys.readouterr().err
    assert not (tmp_path / "build").exists()


def _numbered_notebooks(folder):
    folder.mkdir()
    for name in ("00_setup", "01_theory", "02_dcgan"):
        _write(folder / f"{name}.ipynb", "print('ran')")
    return folder


def test_select_notebooks_by_prefix(tmp_path):
    notebooks = _numbered_notebooks(tmp_path / "notebooks")
    names = [p.stem for p in runner.select_notebooks(notebooks, ["02", "00"])]
    assert names == ["00_setup", "02_dcgan"], "course order, whatever the order of --only"
    assert len(runner.select_notebooks(notebooks, [])) == 3


def test_only_prefix_matching_nothing_lists_the_numbers_and_runs_nothing(tmp_path, monkeypatch):
    notebooks = _numbered_notebooks(tmp_path / "notebooks")
    monkeypatch.setattr(runner, "execute_notebook", lambda *a, **k: pytest.fail("nothing may run"))
    with pytest.raises(runner.NotebookSelectionError, match=r"--only 42 matches no notebook.*00, 01, 02"):
        runner.run_course("smoke", ["00", "42"], tmp_path / "build", notebooks_dir=notebooks)
    assert not (tmp_path / "build").exists()


def test_main_rejects_an_unknown_notebook_number(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "execute_notebook", lambda *a, **k: pytest.fail("nothing may run"))
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--profile", "smoke", "--only", "42", "--build-dir", str(tmp_path / "build")])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "42" in err and "00" in err, err
    assert not (tmp_path / "build").exists()
