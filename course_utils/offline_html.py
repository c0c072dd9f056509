"""HTML copies of executed notebooks that work without network: local MathJax, no require.js, static widgets.

nbconvert's default page loads MathJax and require.js from CDNs, and widget outputs (tqdm's progress bars) need
the widget manager from unpkg: in a room without network the maths shows as raw `$...$` and the bars are blank.
`write_offline_html` instead

- copies MathJax 2 from the `jupyter-server-mathjax` package into `<build>/mathjax/` (once) and points the page
  at that copy (a relative URL, so the build folder can be zipped and moved);
- leaves out require.js and the widget manager (nothing on the page needs them once widgets are static);
- replaces every widget output by a static text fallback read from the widget state nbclient saved with the run
  (a finished progress bar reads `train: 100%|##########| 120/120 [...]`, not an empty box).
"""

from __future__ import annotations

import copy
import html
import re
import shutil
from pathlib import Path

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MATHJAX_FOLDER = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the configurations jupyter-server-mathjax ships
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""
_REMOTE = re.compile(r"""<(?:script|link|iframe|img)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//[^>]*>""", re.I)
_TAG = re.compile(r"<[^>]+>")
_BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]*)\)")  # its image would come from Colab's server


class MathJaxUnavailableError(RuntimeError):
    """The `jupyter-server-mathjax` package (a local copy of MathJax 2) is not installed."""


def mathjax_source() -> Path:
    """The folder of MathJax 2 files shipped by `jupyter-server-mathjax` (the one holding `MathJax.js`)."""
    try:
        import jupyter_server_mathjax
    except ImportError as error:
        raise MathJaxUnavailableError(
            "offline HTML needs a local MathJax: `pip install jupyter-server-mathjax` (it is in the dev extras)"
        ) from error
    folder = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (folder / "MathJax.js").is_file():
        raise MathJaxUnavailableError(f"jupyter-server-mathjax is installed but {folder / 'MathJax.js'} is missing")
    return folder


def install_mathjax(build_dir: Path) -> Path:
    """Copy MathJax into `build_dir/mathjax` unless an identical copy (same MathJax.js) is already there."""
    source = mathjax_source()
    target = build_dir / MATHJAX_FOLDER
    if (target / "MathJax.js").is_file() and (target / "MathJax.js").read_bytes() == (source / "MathJax.js").read_bytes():
        return target
    partial = build_dir / f".{MATHJAX_FOLDER}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def _plain(value: object) -> str:
    """Text of an HTML widget value: tags removed, entities decoded, whitespace squeezed."""
    return " ".join(html.unescape(_TAG.sub("", str(value or ""))).split())


def widget_text(model_id: str, models: dict, depth: int = 0) -> str:
    """A one-line text rendering of a saved widget: labels, HTML text and progress bars of its children."""
    model = models.get(model_id.removeprefix("IPY_MODEL_"), {})
    state = model.get("state", {})
    name = state.get("_model_name", "")
    if depth > 20 or not state:
        return ""
    if "children" in state:
        parts = [widget_text(child, models, depth + 1) for child in state["children"]]
        return " ".join(part for part in parts if part)
    description = _plain(state.get("description", ""))
    if name in ("FloatProgressModel", "IntProgressModel"):
        low, high, value = (float(state.get(key, 0) or 0) for key in ("min", "max", "value"))
        fraction = 0.0 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
        filled = round(10 * fraction)
        return f"{description} |{'#' * filled}{'.' * (10 - filled)}|".strip()
    if name in ("HTMLModel", "LabelModel", "HTMLMathModel", "TextModel"):
        return " ".join(part for part in (description, _plain(state.get("value", ""))) if part)
    if "value" in state and isinstance(state["value"], (int, float, str, bool)):
        return f"{description} {state['value']}".strip()
    return description


def static_widgets(notebook):
    """A copy of `notebook` whose widget outputs are static text and which carries no widget state.

    The Colab badge becomes a plain link (its image is on Colab's server).
    A widget output keeps its other representations when it has an image or HTML one; otherwise its text is
    read from the saved widget state (`widget_text`), falling back to the output's own plain text.
    """
    notebook = copy.deepcopy(notebook)
    models = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = _BADGE.sub(r"[Open in Colab](\1)", cell.source)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            view = data.pop(WIDGET_VIEW)
            if any(key.startswith("image/") or key == "text/html" for key in data):
                continue
            text = widget_text(str(view.get("model_id", "")), models) if isinstance(view, dict) else ""
            data["text/plain"] = text or data.get("text/plain") or "(an interactive widget: open the notebook in Jupyter)"
    return notebook


def html_exporter(mathjax_url: str):
    """nbconvert's lab HTML exporter without require.js and widget scripts, loading MathJax from `mathjax_url`."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(extra_loaders=[DictLoader({"offline.html.j2": _TEMPLATE})], template_file="offline.html.j2",
                        mathjax_url=mathjax_url)


def offline_html(notebook, mathjax_url: str = f"{MATHJAX_FOLDER}/MathJax.js?config={MATHJAX_CONFIG}") -> str:
    """The notebook as one HTML page with static widgets that loads MathJax from `mathjax_url` (relative)."""
    body, _ = html_exporter(mathjax_url).from_notebook_node(static_widgets(notebook))
    return body


def remote_resources(page: str) -> list[str]:
    """The tags of `page` that would fetch a script, stylesheet, frame or image from another host."""
    return [match.group(0) for match in _REMOTE.finditer(page)]


def write_offline_html(notebook, target: Path) -> None:
    """Write `notebook` to `target` as an offline page, with MathJax installed next to it."""
    install_mathjax(target.parent)
    target.write_text(offline_html(notebook), encoding="utf-8")
