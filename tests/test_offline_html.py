"""The HTML copies in build/ need no network: local MathJax, no CDN scripts, widgets as static text."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_utils import offline_html
from course_utils.offline_html import WIDGET_STATE, WIDGET_VIEW


def _widget(model: str, **state):
    return {"model_name": model, "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
            "state": {"_model_name": model, **state}}


def _executed_notebook():
    """A notebook as nbclient leaves it: maths, a badge, a finished tqdm bar (a widget) and its saved state."""
    notebook = new_notebook(cells=[
        new_markdown_cell("# T\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                          "(https://colab.research.google.com/github/o/r/blob/main/notebooks/T.ipynb)\n\n"
                          "The optimum is $D^*(x) = \\frac{p(x)}{p(x) + q(x)}$ and $$\\ln 4.$$"),
        new_code_cell("train()", outputs=[new_output("display_data", data={
            WIDGET_VIEW: {"model_id": "bar", "version_major": 2, "version_minor": 0},
            "text/plain": "  0%|          | 0/120 [00:00<?, ?step/s]"})]),
    ])
    notebook.metadata["widgets"] = {WIDGET_STATE: {"version_major": 2, "version_minor": 0, "state": {
        "bar": _widget("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_progress", "IPY_MODEL_right"]),
        "left": _widget("HTMLModel", value="train: 100%"),
        "progress": _widget("FloatProgressModel", value=120, max=120, min=0),
        "right": _widget("HTMLModel", value=" 120/120 [00:05&lt;00:00, 24.0step/s, loss_d=1.38]"),
    }}}
    return notebook


def test_default_nbconvert_page_needs_the_network():
    """What the offline page fixes (if nbconvert changes its defaults this shows it)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(_executed_notebook())
    remote = offline_html.remote_resources(body)
    assert any("mathjax" in tag.lower() for tag in remote) and any("require" in tag for tag in remote)


def test_offline_page_loads_nothing_from_another_host():
    page = offline_html.offline_html(_executed_notebook())
    assert offline_html.remote_resources(page) == []
    assert '<script src="mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe">' in page
    assert "require.min.js" not in page and "html-manager" not in page and WIDGET_STATE not in page
    assert 'href="https://colab.research.google.com/github/o/r/blob/main/notebooks/T.ipynb"' in page, "a link"


def test_widget_outputs_show_their_final_state_as_text():
    notebook = offline_html.static_widgets(_executed_notebook())
    data = notebook.cells[1].outputs[0]["data"]
    assert WIDGET_VIEW not in data and "widgets" not in notebook.metadata
    assert data["text/plain"] == "train: 100% |##########| 120/120 [00:05<00:00, 24.0step/s, loss_d=1.38]"
    assert WIDGET_VIEW in _executed_notebook().cells[1].outputs[0]["data"], "the original is left alone"


def test_a_widget_without_saved_state_keeps_its_own_text():
    notebook = _executed_notebook()
    notebook.metadata.pop("widgets")
    data = offline_html.static_widgets(notebook).cells[1].outputs[0]["data"]
    assert data["text/plain"].startswith("  0%|")


def test_mathjax_is_copied_once_next_to_the_pages(tmp_path):
    pytest.importorskip("jupyter_server_mathjax")
    target = tmp_path / "build" / "00_x.html"
    target.parent.mkdir()
    offline_html.write_offline_html(nbformat.from_dict(_executed_notebook()), target)
    mathjax = tmp_path / "build" / "mathjax"
    assert (mathjax / "MathJax.js").is_file()
    assert (mathjax / "config" / "TeX-AMS-MML_HTMLorMML-full.js").is_file(), "the configuration the page names"
    stamp = (mathjax / "MathJax.js").stat().st_mtime_ns
    offline_html.install_mathjax(tmp_path / "build")
    assert (mathjax / "MathJax.js").stat().st_mtime_ns == stamp, "an identical copy is not copied again"
