"""`make course`'s runner executes notebooks in order, survives a failing one, and reports fallbacks."""

from __future__ import annotations

import re
from pathlib import Path

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
    if Path("/proc/self/status").exists():  # Linux: the kernel's peak resident memory (a Python kernel: > 20 MB)
        assert all(r.peak_ram_bytes and r.peak_ram_bytes > 20e6 for r in runs), [r.peak_ram_bytes for r in runs]
    summary = runner.format_summary(runs, "smoke")
    assert "Total wall time" in summary and "largest peak RAM" in summary


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
    table = summary.split("Failed notebooks", 1)[0]
    assert "second line" not in table, "the status stays on one line (the traceback follows the table)"
    assert len(re.findall(r"(?<!\\)\|", row)) == 7, f"a '|' in the error broke the Markdown table: {row}"


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
    row = next(line for line in runner.format_summary(runs, "smoke").splitlines() if line.startswith("| 00_x"))
    assert row == "| 00_x | failed: ValueError: a\\|b | 1.0 s | not measured | FID 3 \\| IS 2 more | as planned |"


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


# ----------------------------------------------------------------- progress inside a notebook, failure details


@pytest.mark.parametrize("text, seconds", [("19 s", 19), ("4.6 min", 276), ("4–6 min", 360), ("1.5 h", 5400),
                                           ("29 min (see RESULTS)", 1740), ("37 min on a loaded machine", 2220),
                                           ("not measured", None), ("", None)])
def test_parse_duration(text, seconds):
    assert runner.parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_course_map_gives_smoke_and_cpu_times_for_every_notebook():
    names = {p.stem for p in runner.course_notebooks(runner.REPO_ROOT / "notebooks")}
    for profile in ("smoke", "cpu"):
        times = runner.expected_times(profile)
        assert set(times) == names, f"README course map, {profile}: missing {sorted(names - set(times))}"
        assert all(0 < seconds < 6 * 3600 for seconds in times.values())
    assert set(runner.expected_times("gpu")) <= names


def test_progress_lines_and_the_failed_cell_in_the_summary(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write(notebooks / "00_slow.ipynb", "print('first')", "import time\ntime.sleep(1.2)",
           "x = 1\nraise RuntimeError('diverged at step 7')")
    readme = tmp_path / "README.md"
    readme.write_text("## Course map\n\n| # | notebook | what | smoke | cpu |\n|---|---|---|---:|---:|\n"
                      "| 00 | `00_slow` | sleeps | 5 s | 2 min |\n\nMore text.\n")
    runs = runner.run_course("smoke", [], tmp_path / "build", notebooks_dir=notebooks, progress_every=0.3,
                             readme=readme)
    out = capsys.readouterr().out
    assert "[course] 1/1 00_slow.ipynb (smoke, 3 code cells, course map: 5 s) ..." in out
    assert re.search(r"\[course\] 00_slow: cell 2/3, \d+ s elapsed \(course map: 5 s\)", out), out
    assert "[course] 00_slow.ipynb: failed after" in out
    summary = runner.format_summary(runs, "smoke")
    assert runs[0].status == "failed: RuntimeError: diverged at step 7"
    failures = summary.split("Failed notebooks", 1)[1]
    assert "00_slow: RuntimeError: diverged at step 7" in failures
    assert "code cell 3/3 (cell index 2): `x = 1`" in failures
    assert "RuntimeError: diverged at step 7" in failures.split("```")[1], "the traceback's end is shown"
    assert "\x1b[" not in summary, "no terminal colour codes in the summary"


def test_no_failure_section_when_all_pass():
    runs = [runner.NotebookRun("00_x", "ok", 1.0, "", ())]
    assert "Failed notebooks" not in runner.format_summary(runs, "smoke")


def test_progress_line_without_a_course_map_time():
    notebook = new_notebook(cells=[new_code_cell("1"), nbformat.v4.new_markdown_cell("m"), new_code_cell("2")])
    clock = iter([100.0, 165.0])  # the start, then the line
    progress = runner.CellProgress("03_x", notebook, None, clock=lambda: next(clock))
    progress.on_cell_start(cell=notebook.cells[2], cell_index=2)
    assert progress.line() == "[course] 03_x: cell 2/2, 1 min 05 s elapsed"
