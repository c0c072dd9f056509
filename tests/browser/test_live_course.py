"""The live course in a real browser: JupyterLab + headless Chromium (Playwright), smoke profile.

Notebooks 01 and 02 are run with *Run All Cells*; then one slider of an explorer is moved, and the figure it
drives must change; no widget may show "Error displaying widget". A second test opens `make course`'s offline
HTML with every network request blocked and checks that the maths was typeset (no raw `$...$` left).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from course_utils.runner import REPO_ROOT

NOTEBOOKS = ("01_gan_theory_and_loss_math", "02_dcgan_medmnist")
KERNEL_TIMEOUT_S = 180  # the kernel starts in 5-10 s on a quiet 2-core CPU; much longer under load
RUN_TIMEOUT_S = 600  # 01 runs in ~20 s and 02 in ~1-2 min in smoke on the shared 2-core CPU (load ~4)
REDRAW_TIMEOUT_S = 120  # one redraw: a matplotlib figure (01) or a generator forward pass (02)
RAW_MATH = re.compile(r"(?<![\\$\w])\$[^$\s][^$\n]{0,200}?\$(?!\w)")

# JupyterLab's state, read through `window.jupyterapp` (exposed by --LabApp.expose_app_in_browser, conftest).
# The toolbar's execution indicator says "idle" before any kernel exists, so the test waits on the session
# itself: a Run All sent before the kernel exists is dropped behind a "Select Kernel" dialog (the first runs).
_KERNEL = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const context = panel && panel.sessionContext;
    const kernel = context && context.session && context.session.kernel;
    return {
        path: panel && panel.context ? panel.context.path : null,
        ready: Boolean(context && context.isReady && kernel && kernel.status === 'idle'
                       && kernel.connectionStatus === 'connected'),
        kernel: kernel ? kernel.name : null,
        status: kernel ? kernel.status : null,
        dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.slice(0, 300)),
    };
}"""

# the kernel's own environment: COURSE_PROFILE must reach it (the server's environment is the kernel's)
_KERNEL_PROFILE = """async () => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    let text = '';
    const future = kernel.requestExecute({code: "import os; print(os.environ.get('COURSE_PROFILE'))",
                                          silent: false, store_history: false});
    future.onIOPub = msg => { if (msg.header.msg_type === 'stream') text += msg.content.text; };
    await future.done;
    return text.trim();
}"""

# Run > Run All Cells; the command's promise settles when the last cell has run (or the run stopped)
_RUN_ALL = """() => {
    window.__courseRun = {settled: false, ok: null, error: null};
    window.jupyterapp.commands.execute('notebook:run-all-cells').then(
        ok => { window.__courseRun = {settled: true, ok: ok, error: null}; },
        error => { window.__courseRun = {settled: true, ok: false, error: String(error)}; });
}"""

_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cells = panel.content.model.cells;
    let code = 0, done = 0, errors = [];
    for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        if (cell.type !== 'code') continue;
        code++;
        if (cell.executionCount) done++;
        for (const out of cell.outputs.toJSON()) {
            if (out.output_type === 'error') errors.push(out.ename + ': ' + out.evalue);
        }
    }
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return {code, done, errors, status: kernel ? kernel.status : null, run: window.__courseRun,
            dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.slice(0, 300))};
}"""

# The notebook's first output holding both a slider and a figure (an explorer): tagged so that it is found
# again after the redraw; returns its first slider's readout and its figure's data URL.
_EXPLORER = """() => {
    const notebook = window.jupyterapp.shell.currentWidget.node;
    let area = notebook.querySelector('[data-browser-test="explorer"]');
    if (!area) {
        area = [...notebook.querySelectorAll('.jp-OutputArea-output')]
            .find(el => el.querySelector('.widget-slider') && el.querySelector('img'));
        if (!area) return null;
        area.setAttribute('data-browser-test', 'explorer');
    }
    const readout = area.querySelector('.widget-slider .widget-readout');
    const img = area.querySelector('img');
    return {readout: readout ? readout.innerText : null, src: img ? img.src : null};
}"""


def _fail(page, tmp_path, message: str):
    """Fail the test with `message` and a screenshot of the page."""
    shot = tmp_path / "failure.png"
    page.screenshot(path=str(shot), full_page=False)
    pytest.fail(f"{message} (screenshot: {shot})")


def _poll(page, tmp_path, script: str, until, timeout_s: float, what: str) -> dict:
    """Evaluate `script` every second until `until(state)`; fail on a dialog, a cell error or the timeout."""
    deadline = time.monotonic() + timeout_s
    state = {}
    while time.monotonic() < deadline:
        state = page.evaluate(script)
        if state.get("dialogs"):  # e.g. "Select Kernel": the notebook's kernel was not started by itself
            _fail(page, tmp_path, f"{what}: JupyterLab opened a dialog: {state['dialogs']}")
        if state.get("errors"):
            _fail(page, tmp_path, f"{what}: a cell failed in the browser: {state['errors']}")
        if until(state):
            return state
        time.sleep(1)
    _fail(page, tmp_path, f"{what}: not done in {timeout_s} s: {state}")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_a_slider_redraws_its_figure(browser, lab, name, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    base, token, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console_errors = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    # a workspace of its own, so that JupyterLab does not reopen the other notebook next to this one
    page.goto(f"{base}/lab/workspaces/{name}/tree/{name}.ipynb?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)

    started = time.monotonic()
    kernel = _poll(page, tmp_path, _KERNEL, lambda state: state["ready"], KERNEL_TIMEOUT_S,
                   f"{name}: starting the notebook's kernel")
    assert kernel["path"] == f"{name}.ipynb", f"{name}: the current tab is {kernel['path']!r}"
    assert kernel["kernel"] == "python3", f"{name}: JupyterLab started kernel {kernel['kernel']!r}"
    profile = page.evaluate(_KERNEL_PROFILE)
    assert profile == "smoke", f"{name}: the kernel runs in profile {profile!r}, not smoke"
    print(f"{name}: kernel python3 ready in {time.monotonic() - started:.0f} s, COURSE_PROFILE={profile}")

    started = time.monotonic()
    page.evaluate(_RUN_ALL)
    state = _poll(page, tmp_path, _STATE, lambda state: state["run"]["settled"], RUN_TIMEOUT_S,
                  f"{name}: Run All Cells")
    assert state["run"]["ok"], f"{name}: Run All Cells reported a failure: {state}"
    assert state["code"] and state["done"] == state["code"], f"{name}: not every code cell ran: {state}"
    print(f"{name}: {state['code']} code cells ran in the browser in {time.monotonic() - started:.0f} s")

    page.wait_for_function(_EXPLORER, timeout=60_000)  # widget views render just after their cell ran
    area = page.locator('.jp-NotebookPanel [data-browser-test="explorer"]')
    before = page.evaluate(_EXPLORER)
    assert before["src"] and before["readout"] is not None, f"{name}: the explorer has no figure or readout"
    area.scroll_into_view_if_needed()
    track = area.locator(".widget-slider .noUi-base, .widget-slider .ui-slider").first  # ipywidgets 8, 7
    handle = area.locator(".widget-slider .noUi-handle, .widget-slider .ui-slider-handle").first
    box, handle = track.bounding_box(), handle.bounding_box()
    assert box and handle and box["width"] > 20, f"{name}: the slider is not visible"
    # click the track far from the handle, so that the value changes (02's epoch slider starts at the end)
    at_right = handle["x"] + handle["width"] / 2 > box["x"] + box["width"] / 2
    page.mouse.click(box["x"] + (0.1 if at_right else 0.9) * box["width"], box["y"] + box["height"] / 2)
    try:
        page.wait_for_function(f"old => {{ const e = ({_EXPLORER})(); return e && e.src && e.src !== old; }}",
                               arg=before["src"], timeout=REDRAW_TIMEOUT_S * 1000, polling=500)
    except PlaywrightTimeout:  # say whether the slider itself moved
        after = page.evaluate(_EXPLORER)
        _fail(page, tmp_path, f"{name}: moving the slider did not change the figure in {REDRAW_TIMEOUT_S} s "
                              f"(slider readout {before['readout']!r} -> {after['readout']!r})")
    after = page.evaluate(_EXPLORER)
    assert after["readout"] != before["readout"], f"{name}: the figure changed but the slider did not move"
    print(f"{name}: slider {before['readout']} -> {after['readout']}, figure redrawn")
    assert "Error displaying widget" not in page.evaluate("() => document.body.textContent"), \
        f"{name}: a widget failed to display"
    widget_errors = [message for message in console_errors if "widget" in message.lower()]
    assert not widget_errors, widget_errors
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")  # free its memory
    page.close()


@pytest.fixture(scope="module")
def offline_build(tmp_path_factory):
    """`make course`'s build folder for notebooks 01 and 02 (smoke profile)."""
    build = tmp_path_factory.mktemp("build")
    result = subprocess.run([sys.executable, "-m", "course_utils.runner", "--profile", "smoke", "--only", "01", "02",
                             "--build-dir", str(build)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return build


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_offline_html_typesets_the_maths_with_the_network_blocked(browser, offline_build, name):
    page = browser.new_page()
    blocked = []

    def only_local(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto((offline_build / f"{name}.html").as_uri())
    page.wait_for_function("() => window.MathJax && window.MathJax.Hub", timeout=60_000)
    page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")
    markdown = page.locator(".jp-RenderedMarkdown").all_inner_texts()
    raw = [hit for text in markdown for hit in RAW_MATH.findall(text)]
    assert not raw, f"{name}: maths left as raw TeX offline: {raw[:5]}"
    typeset = page.locator(".MathJax, .MathJax_Display, .MathJax_SVG, mjx-container").count()
    assert typeset > 10, f"{name}: only {typeset} formulas typeset"
    assert not blocked, f"{name}: the page tried to load {blocked[:5]}"
    page.close()
