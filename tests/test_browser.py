"""A real browser on the quickstart notebook: JupyterLab headless on loopback, Debian's Chromium driven
by Playwright. Run all cells, move a slider, check that the plot re-rendered and no cell shows an
error, and save a screenshot into runs/browser/.

Marked `browser`; skipped where Chromium or Playwright is missing (.ci/run installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture
def jupyter_lab(tmp_path):
    """A JupyterLab server on loopback serving copies of 00_quickstart and 90_explorer; yields (base url, token)."""
    root, settings = tmp_path / "root", tmp_path / "settings"
    root.mkdir()
    for name in ("00_quickstart.ipynb", "90_explorer.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, root)
    for path, value in {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    }.items():
        (settings / path).parent.mkdir(parents=True, exist_ok=True)
        (settings / path).write_text(json.dumps(value))
    port, token = free_port(), "mtlab-browser-test"
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            # a workspace of its own: the user's (or an earlier test's) would reopen other notebooks beside
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                api(f"{base}/api/status?token={token}")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield base, token
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_kernel_idle(base: str, token: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        sessions = api(f"{base}/api/sessions?token={token}")
        if sessions and all(s["kernel"]["execution_state"] == "idle" for s in sessions):
            return
        time.sleep(0.5)
    pytest.fail("the notebook's kernel did not become idle")


def plot_source(page) -> str:
    """The src of the last figure drawn inside the widget panel's output area."""
    images = page.locator(".widget-output img")
    return images.last.get_attribute("src") if images.count() else ""


def open_and_run_all(page, base: str, token: str, notebook: str) -> None:
    """Open `notebook` in JupyterLab once its kernel is idle, and run all its cells."""
    page.goto(f"{base}/lab/tree/{notebook}?token={token}&reset")
    page.wait_for_selector(".jp-Notebook >> visible=true", timeout=60_000)
    wait_kernel_idle(base, token)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()


def test_quickstart_in_a_real_browser(jupyter_lab):
    base, token = jupyter_lab
    shots = ROOT / "runs" / "browser" / datetime.now().strftime("%Y%m%d-%H%M%S")
    shots.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_and_run_all(page, base, token, "00_quickstart.ipynb")
        page.wait_for_selector(".widget-output img", timeout=300_000)  # the panel has drawn its first plot
        wait_kernel_idle(base, token, timeout=300)
        before = plot_source(page)
        assert before
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")  # move the learning-rate slider one step
        page.wait_for_function(
            "before => { const imgs = document.querySelectorAll('.widget-output img');"
            " return imgs.length && imgs[imgs.length - 1].src !== before; }",
            arg=before,
            timeout=300_000,
        )
        wait_kernel_idle(base, token, timeout=300)
        assert plot_source(page) != before  # the plot re-rendered
        errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
        assert errors.count() == 0, errors.first.inner_text()
        page.locator(".widget-output img").last.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "00_quickstart.png"), full_page=False)
        browser.close()
    assert (shots / "00_quickstart.png").stat().st_size > 10_000


def test_explorer_trains_the_recommender_with_pmtrec_in_a_real_browser(jupyter_lab):
    """The explorer's recommendation path: pick a recommendation dataset (the model becomes MF) and
    PMTRec, press Run, and see the live ranking curve and the run's NDCG in the results table."""
    base, token = jupyter_lab
    shots = ROOT / "runs" / "browser" / datetime.now().strftime("%Y%m%d-%H%M%S")
    shots.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_and_run_all(page, base, token, "90_explorer.ipynb")
        page.wait_for_selector(".widget-dropdown select", timeout=300_000)
        wait_kernel_idle(base, token, timeout=300)
        dropdown = lambda label: page.locator(".widget-dropdown", has_text=label).locator("select").first  # noqa: E731
        dropdown("dataset").select_option(label="rec-synthetic")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.widget-dropdown select')].some(s => s.value === 'mf')",
            timeout=60_000,
        )
        dropdown("weighting").select_option(label="PMTRec")
        page.locator(".widget-button", has_text="Run").first.click()
        page.wait_for_function("() => document.body.innerText.includes('test ndcg@40')", timeout=300_000)
        wait_kernel_idle(base, token, timeout=300)
        assert page.locator(".widget-label", has_text="done in").count() == 1
        curve = page.locator("img.widget-image, .widget-image img")  # the live curve (validation NDCG)
        assert curve.count() >= 1 and curve.first.get_attribute("src")
        errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
        assert errors.count() == 0, errors.first.inner_text()
        page.screenshot(path=str(shots / "90_explorer_mf_pmtrec.png"), full_page=False)
        browser.close()
    assert (shots / "90_explorer_mf_pmtrec.png").stat().st_size > 10_000


def test_batch_report_and_comparison_in_a_real_browser(tmp_path):
    """report.html of a run folder and the comparison of two runs, opened from disk with the network
    cut: the front page (Table 2 and PMTRec's claims with their verdicts) lies within the first
    1400 × 900 screen, every figure loads offline, and a notebook's section folds and unfolds."""
    from test_report import kept_run

    from mtlab.report import compare_runs, write_report

    a, b = kept_run(tmp_path / "A"), kept_run(tmp_path / "B", shift=0.02)
    report, comparison = write_report(a), compare_runs(a, b)
    shots = ROOT / "runs" / "browser" / datetime.now().strftime("%Y%m%d-%H%M%S")
    shots.mkdir(parents=True, exist_ok=True)
    fetched = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
        context.route("http*://**/*", lambda route: (fetched.append(route.request.url), route.abort()))
        page = context.new_page()
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        for headline in (
            page.locator("table.table2"),
            page.get_by_text("filmtrust: PMTRec's ndcg@40 above the best baseline", exact=False),
            page.locator(".v").first,
        ):
            box = headline.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 900, box  # above the fold
        assert page.locator(".v-better, .v-reproduced, .v-worse").count() >= 16
        figures = page.locator(".figures img")
        assert figures.count() >= 2
        for i in range(figures.count()):  # decoded in the browser, not only present in the file
            assert figures.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
        page.screenshot(path=str(shots / "report_front_page.png"))
        section = page.locator("details[id='01_mtl_benchmark']")
        table = section.locator("table").first
        assert section.get_attribute("open") is None and not table.is_visible()  # folded by default
        section.locator("summary").click()
        assert table.is_visible() and section.get_attribute("open") is not None
        section.locator("summary").click()
        assert not table.is_visible()
        page.goto(comparison.as_uri())
        moved = page.locator("details[open] > summary", has_text="01_mtl_benchmark · results")
        assert moved.is_visible() and page.get_by_text("mpt_rec").first.is_visible()
        page.screenshot(path=str(shots / "report_comparison.png"))
        browser.close()
    assert not fetched, fetched  # nothing asked of the network
