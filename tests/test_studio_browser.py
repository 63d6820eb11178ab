"""The studio in a real browser (Debian's chromium + chromedriver, driven by Selenium): build a data set on the
page, advise, train, then drop an image on the try tab and see its prediction (and a webcam frame); then evaluate
and export. Screenshots at 1366×768 go to ``$SHOULDERS_SCREENSHOTS`` (or the test's temporary folder)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from conftest import TINY

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[dev]')")
pytest.importorskip("fastapi", reason="the studio's web libraries are not installed (pip install '.[studio]')")
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

COLOURS = {"red": (210, 30, 30), "blue": (30, 40, 210)}

# A drop as a person makes it: a PNG drawn on a canvas, put in a DataTransfer, dropped on the zone.
DROP_IMAGE = """
const [selector, rgb, done] = arguments;
const canvas = document.createElement("canvas");
canvas.width = canvas.height = 24;
const g = canvas.getContext("2d");
g.fillStyle = rgb; g.fillRect(0, 0, 24, 24);
canvas.toBlob((blob) => {
  const data = new DataTransfer();
  data.items.add(new File([blob], "dropped.png", {type: "image/png"}));
  const drop = new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true});
  document.querySelector(selector).dispatchEvent(drop);
  done(true);
}, "image/png");
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _images(root: Path) -> dict[str, list[str]]:
    """Eight noisy 16 px images per colour, on disk for the file chooser."""
    import numpy as np

    rng = np.random.default_rng(0)
    out: dict[str, list[str]] = {}
    for name, rgb in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(8):
            pixels = rng.normal(rgb, 25, size=(16, 16, 3)).clip(0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{name}{i}.png")
        out[name] = sorted(str(p) for p in folder.iterdir())
    return out


@pytest.fixture
def studio_url(tmp_path: Path, tiny_weights: Path):
    weights = tiny_weights
    port = _free_port()
    log = open(tmp_path / "studio.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "shoulders", "studio", "--port", str(port), "--backbone", TINY,
                               "--weights", str(weights), "--image-size", "32", "--device", "cpu",
                               "--runs", str(tmp_path / "runs"), "--workspace", str(tmp_path / "ws")],
                              stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})  # see test_studio
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/api/session", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail("the studio did not start: " + (tmp_path / "studio.log").read_text())
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(10)
    log.close()


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1366,768", "--force-device-scale-factor=1",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):  # a test-pattern webcam
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the page itself 1366×768, not the window
                           {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})
    yield driver
    driver.quit()


def test_data_advise_train_try_in_chromium(studio_url: str, browser, tmp_path: Path) -> None:
    shots = Path(os.environ.get("SHOULDERS_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    files = _images(tmp_path / "images")
    wait = WebDriverWait(browser, 60, poll_frequency=0.2)
    browser.get(studio_url)
    find = browser.find_element

    # data: a folder that does not exist is a message; then a new data set, two classes, images through each
    # class's drop zone
    find(By.ID, "data-path").send_keys(str(tmp_path / "nowhere"))
    find(By.CSS_SELECTOR, "#open-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "message"), "nowhere does not exist"))
    find(By.ID, "new-name").send_keys("colours")
    find(By.CSS_SELECTOR, "#new-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "data-summary"), "no images yet"))
    for name in COLOURS:
        find(By.ID, "class-name").send_keys(name)
        find(By.CSS_SELECTOR, "#class-form button").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f'.dropzone[data-class="{name}"] input')))
    for name, paths in files.items():
        find(By.CSS_SELECTOR, f'.dropzone[data-class="{name}"] input').send_keys("\n".join(paths))
        wait.until(EC.text_to_be_present_in_element((By.ID, "upload-report"), f"{name}: 8 image(s) added"))
    wait.until(EC.text_to_be_present_in_element((By.ID, "data-summary"), "Ready: 16 images in 2 classes"))
    assert "16×16" in find(By.ID, "data-summary").text
    browser.save_screenshot(str(shots / "1-data.png"))

    # advise
    find(By.CSS_SELECTOR, '#tabs [data-tab="advise"]').click()
    find(By.ID, "advise-start").click()
    wait.until(EC.visibility_of_element_located((By.ID, "advise-plan")))
    assert "Plan:" in find(By.ID, "advise-plan").text and "similarity" in find(By.ID, "advise-measurements").text
    wait.until(lambda d: d.execute_script("return document.getElementById('advise-matrix').naturalWidth") > 0)
    browser.save_screenshot(str(shots / "2-advise.png"))
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#budget-body table")))  # the planner's table
    assert "expected accuracy" in find(By.ID, "budget-body").text

    # train: full, 3 epochs, and watch it finish with its curves
    find(By.CSS_SELECTOR, '#tabs [data-tab="train"]').click()
    find(By.ID, "train-name").send_keys("first")
    find(By.CSS_SELECTOR, '#train-strategy option[value="full"]').click()
    find(By.ID, "train-epochs").send_keys("3")
    find(By.ID, "train-start").click()
    WebDriverWait(browser, 120, poll_frequency=0.3).until(
        EC.text_to_be_present_in_element((By.ID, "run-status"), "finished"))
    assert find(By.CSS_SELECTOR, "#chart-acc polyline") is not None
    assert "epoch 3" in find(By.ID, "run-summary").text
    browser.save_screenshot(str(shots / "3-train.png"))

    # try: drop a red image, see the prediction and its bars
    find(By.CSS_SELECTOR, '#tabs [data-tab="try"]').click()
    wait.until(lambda d: d.find_element(By.ID, "try-run").get_attribute("value") == "first")
    browser.execute_async_script(DROP_IMAGE, "#try-drop", "rgb(210,30,30)")
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#try-result .prediction")))
    label = find(By.CSS_SELECTOR, "#try-result .prediction").text
    bars = find(By.ID, "try-result").find_elements(By.CSS_SELECTOR, ".topk .label")
    assert label in COLOURS and [b.text for b in bars][0] == label and len(bars) == 2
    assert "dropped.png" in find(By.ID, "try-result").text
    browser.save_screenshot(str(shots / "4-try.png"))

    # the webcam (Chromium's fake camera): one frame classified the same way
    find(By.ID, "webcam-start").click()
    wait.until(EC.visibility_of_element_located((By.ID, "webcam-snap")))
    wait.until(lambda d: d.execute_script("return document.getElementById('webcam').videoWidth") > 0)
    find(By.ID, "webcam-snap").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "try-result"), "webcam.png"))
    assert find(By.CSS_SELECTOR, "#try-result .prediction").text in COLOURS

    # a file that is not an image: a message on the page, the server still answers
    browser.execute_script("""
      const data = new DataTransfer();
      data.items.add(new File(["plain text"], "notes.txt", {type: "text/plain"}));
      document.querySelector("#try-drop").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));""")
    wait.until(EC.text_to_be_present_in_element((By.ID, "message"), "'notes.txt' is not an image"))
    browser.save_screenshot(str(shots / "5-try-error.png"))

    # evaluate and export the run
    find(By.CSS_SELECTOR, '#tabs [data-tab="evaluate"]').click()
    find(By.ID, "eval-start").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "eval-classes"), "first: accuracy"))
    assert {"blue", "red"} <= set(find(By.CSS_SELECTOR, "#eval-confusion table").text.split())
    browser.save_screenshot(str(shots / "6-evaluate.png"))
    find(By.CSS_SELECTOR, '#tabs [data-tab="export"]').click()
    find(By.CSS_SELECTOR, '#export-format option[value="torchscript"]').click()
    find(By.ID, "export-start").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "export-result"), "passed"))
    assert find(By.LINK_TEXT, "Download model.pt").get_attribute("href").endswith("/files/model.pt")
    browser.save_screenshot(str(shots / "7-export.png"))
