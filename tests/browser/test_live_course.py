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
RUN_TIMEOUT_S = 240  # both notebooks take 10-20 s each in smoke on a quiet 2-core CPU (README course map)
RAW_MATH = re.compile(r"(?<![\\$\w])\$[^$\s][^$\n]{0,200}?\$(?!\w)")


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
    return {code, done, errors, status: kernel ? kernel.status : null};
}"""


def _wait_until_run(page, name: str) -> dict:
    """Wait until every code cell has an execution count and the kernel is idle; fail on an error output."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    restart_at = time.monotonic() + 15
    state = {}
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")  # "Select Kernel": the default
        if accept.count():
            accept.first.click()
        state = page.evaluate(_STATE)
        if state["errors"]:
            pytest.fail(f"{name}: a cell failed in the browser: {state['errors']}")
        if state["code"] and state["done"] == state["code"] and state["status"] == "idle":
            return state
        if state["done"] == 0 and state["status"] == "idle" and time.monotonic() > restart_at:
            # a first Run All can be dropped while JupyterLab asks which kernel to start: ask again
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            restart_at = time.monotonic() + 15
        time.sleep(1)
    page.screenshot(path=f"/tmp/{name}-timeout.png")
    pytest.fail(f"{name} did not finish running in the browser in {RUN_TIMEOUT_S} s: {state}")


def _slider_and_figure(page):
    """The first output area holding a slider and an image: (slider track locator, image locator)."""
    areas = page.locator(".jp-OutputArea-output:has(.widget-slider):has(img)")
    assert areas.count(), "no explorer with a slider and a figure was displayed"
    area = areas.first
    area.scroll_into_view_if_needed()
    track = area.locator(".widget-slider .noUi-base, .widget-slider .ui-slider").first
    return track, area.locator("img").first


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_a_slider_redraws_its_figure(browser, lab, name):
    base, token, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console_errors = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{base}/lab/tree/{name}.ipynb?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_function("""() => {
        const s = document.querySelector('.jp-Notebook-ExecutionIndicator');
        return s && s.getAttribute('data-status') === 'idle';
    }""", timeout=120_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.isEnabled('notebook:run-all-cells')",
                           timeout=60_000)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")  # Run > Run All
    started = time.monotonic()
    state = _wait_until_run(page, name)
    print(f"{name}: {state['code']} code cells ran in the browser in {time.monotonic() - started:.0f} s")
    track, image = _slider_and_figure(page)
    before = image.get_attribute("src")
    box = track.bounding_box()
    assert box and box["width"] > 20, "the slider is not visible"
    page.mouse.click(box["x"] + 0.85 * box["width"], box["y"] + box["height"] / 2)
    deadline = time.monotonic() + 60
    while image.get_attribute("src") == before and time.monotonic() < deadline:
        time.sleep(0.5)
        _, image = _slider_and_figure(page)
    assert image.get_attribute("src") != before, f"{name}: moving the slider did not change the figure"
    text = page.locator(".jp-Notebook").inner_text()
    assert "Error displaying widget" not in text
    widget_errors = [m for m in console_errors if "widget" in m.lower()]
    assert not widget_errors, widget_errors
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
