"""The whole analyst flow in a real browser: headless Debian Chromium driven by Playwright.

Upload a clip through the file uploader, wait for the verdict, move a weight slider and switch to
the median in the Ensemble lab, check the verdict changed accordingly, download the PDF and check
it holds the verdict, the file's SHA-256 and the settings. Screenshots go to test-output/e2e/.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from detector import synthetic
from detector.paths import PROJECT_ROOT, data_dir

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
OUT = PROJECT_ROOT / "test-output" / "e2e"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (make test-e2e installs it)")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(PROJECT_ROOT / "app.py"),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A FaceForensics++ clip when ../shared is present, else a generated one."""
    real = data_dir() / "clips" / "ffpp_c23" / "fake" / "FaceSwap_634_660.mp4"
    if real.exists():
        dest = tmp_path_factory.mktemp("clip") / real.name
        shutil.copy(real, dest)
        return dest
    return synthetic.astronaut_clip(tmp_path_factory.mktemp("clip") / "astronaut.mp4", seconds=5)


def _p_fake(page) -> float:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Ensemble p_fake").first
    text = metric.locator('[data-testid="stMetricValue"]').inner_text()
    return float(text)


def test_upload_analyse_reweight_and_download_report(app_url, clip):
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader

    OUT.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(120_000)
        page.goto(app_url)
        page.get_by_text("Analyze a video").wait_for()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(clip))
        page.get_by_text(clip.name).first.wait_for()
        page.get_by_role("button", name="Analyze").click()
        page.get_by_text("Ensemble p_fake").first.wait_for(timeout=180_000)
        first = _p_fake(page)
        page.screenshot(path=str(OUT / "1-verdict.png"), full_page=True)

        page.get_by_role("link", name="Timeline").first.click()
        page.get_by_text("Per-frame scores").wait_for()
        page.screenshot(path=str(OUT / "2-timeline.png"), full_page=True)

        page.get_by_role("link", name="Ensemble lab").first.click()
        page.get_by_text("Weights and aggregation").wait_for()
        assert abs(_p_fake(page) - first) < 1e-3
        slider = page.locator('[data-testid="stSlider"]').first.get_by_role("slider")
        slider.focus()
        page.keyboard.press("End")  # first model to weight 1.0
        page.wait_for_timeout(1500)
        reweighted = _p_fake(page)
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Frames → person").click()
        page.get_by_role("option", name="Median over frames").click()
        page.wait_for_timeout(1500)
        median = _p_fake(page)
        page.screenshot(path=str(OUT / "3-ensemble-lab.png"), full_page=True)
        assert reweighted != first or median != first, "re-weighting changed nothing"

        page.get_by_role("link", name="Report").first.click()
        with page.expect_download() as dl:
            page.get_by_role("button", name="Download PDF report").click()
        pdf_path = OUT / "report.pdf"
        dl.value.save_as(pdf_path)
        page.screenshot(path=str(OUT / "4-report.png"), full_page=True)
        browser.close()

    text = "\n".join(pg.extract_text() for pg in PdfReader(io.BytesIO(pdf_path.read_bytes())).pages)
    assert digest in text.replace("\n", "")
    assert re.search(
        r"(LIKELY MANIPULATED|NO MANIPULATION DETECTED|UNCERTAIN)\s+p_fake = " + f"{median:.3f}",
        text,
    )
    assert "Median over frames" in text
    assert "1fps" in text
