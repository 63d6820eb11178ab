"""Screenshots of ``shoulders studio`` on real data, as in the README: Fashion-MNIST (50 images per class, from the
Debian package ``dataset-fashion-mnist``) with the bundled ``tf_efficientnet_lite0`` at 64 px, driven in Debian's
chromium through Selenium at 1366×768.

    python docs/studio_screenshot.py --out /tmp/studio-shots        # every tab, ~3 min on 2 cores
    python docs/studio_screenshot.py --out docs --only advise       # the README's picture (no training), ~1 min

It trains the run with ``--strategy auto`` and 3 epochs, classifies one official test image on the try tab,
evaluates the run and exports it to ONNX; each tab is saved as ``studio-<tab>.png``.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from shoulders.data import load_fashion_mnist, write_image_folder


def start_studio(data: Path, work: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "shoulders", "studio", str(data), "--port", str(port),
                               "--image-size", "64", "--runs", str(work / "runs"), "--workspace", str(work / "ws")])
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/api/session", timeout=2)
            return server, url
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("the studio did not start")


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})
    return driver


def tour(driver: webdriver.Chrome, url: str, test_image: Path, out: Path, only: str | None) -> None:
    wait = WebDriverWait(driver, 600, poll_frequency=0.5)
    find = driver.find_element

    def tab(name: str) -> None:
        find(By.CSS_SELECTOR, f'#tabs [data-tab="{name}"]').click()

    def shot(name: str) -> None:
        if only in (None, name):
            driver.save_screenshot(str(out / f"studio-{name}.png"))

    driver.get(url)
    wait.until(EC.text_to_be_present_in_element((By.ID, "data-summary"), "Ready"))
    shot("data")
    tab("advise")
    find(By.ID, "advise-start").click()
    wait.until(EC.visibility_of_element_located((By.ID, "advise-plan")))
    wait.until(lambda d: d.execute_script("return document.getElementById('advise-matrix').naturalWidth") > 0)
    shot("advise")
    if only == "advise":  # the README's picture needs no training
        return
    tab("train")
    find(By.ID, "train-name").send_keys("fashion")
    find(By.ID, "train-epochs").send_keys("3")
    find(By.ID, "train-start").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "run-status"), "finished"))
    shot("train")
    tab("try")
    wait.until(lambda d: d.find_element(By.ID, "try-run").get_attribute("value") == "fashion")
    find(By.ID, "try-file").send_keys(str(test_image))
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#try-result .prediction")))
    shot("try")
    tab("evaluate")
    find(By.ID, "eval-start").click()
    wait.until(EC.visibility_of_element_located((By.ID, "eval-classes")))
    shot("evaluate")
    tab("export")
    find(By.ID, "export-start").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "export-result"), "Parity"))
    shot("export")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    parser.add_argument("--only", help="save only this tab's screenshot (data, advise, train, try, evaluate, export)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        x, y, classes = load_fashion_mnist("train", per_class=50, seed=0)
        data = write_image_folder(x, y, classes, work / "fashion-50")
        tx, ty, _ = load_fashion_mnist("test", per_class=1, seed=0)
        test_image = work / "ankle-boot-from-the-test-set.png"
        Image.fromarray(tx[list(ty).index(9)]).resize((112, 112), Image.NEAREST).save(test_image)  # 9: Ankle boot
        server, url = start_studio(data, work)
        driver = browser()
        try:
            tour(driver, url, test_image, args.out, args.only)
        finally:
            driver.quit()
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
