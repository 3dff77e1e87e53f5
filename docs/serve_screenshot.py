"""docs/serve.png: the page of `mixma serve` with results, a moment playing and an answer, taken
in headless chromium (Debian's chromium and chromium-driver).

Run: `.venv/bin/python docs/serve_screenshot.py` (indexes the sample clips, trains a tiny MA-LMM
for a few seconds, serves both on a free loopback port, searches, plays, asks, saves the PNG).
"""

from __future__ import annotations

import glob
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # the browser as the tests start it; the tiny MA-LMM as bench_serve trains it

QUERY, QUESTION = "bicycle", "what happens?"


def main(out: Path = ROOT / "docs" / "serve.png") -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from bench_serve import CLIPS, tiny_malmm
    from mixma.index import VideoIndex, build_index
    from mixma.inference import VideoAssistant
    from mixma.serve import create_app
    from mixma.serve.run import BackgroundServer
    from tests.serve.browser import chrome, quit_chrome

    with tempfile.TemporaryDirectory() as tmp:
        build_index(CLIPS, Path(tmp) / "clips.index", progress=False)
        app = create_app(VideoIndex.open(Path(tmp) / "clips.index"), VideoAssistant.from_checkpoint(tiny_malmm(Path(tmp))))
        with BackgroundServer(app) as url:
            driver = chrome(1280, 640)
            try:
                wait = WebDriverWait(driver, 60)
                driver.get(f"{url}?q={QUERY}")
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".hit img"))
                wait.until(lambda d: all(i.get_property("naturalWidth") for i in d.find_elements(By.CSS_SELECTOR, ".hit img")))
                driver.find_elements(By.CSS_SELECTOR, ".hit")[0].click()
                wait.until(lambda d: d.execute_script("return document.getElementById('player').readyState") >= 2)
                driver.find_element(By.ID, "question").send_keys(QUESTION + "\n")
                wait.until(lambda d: d.find_element(By.ID, "answer").text not in ("", "Thinking…"))
                driver.execute_script("document.getElementById('player').pause(); window.scrollTo(0, 0)")
                time.sleep(0.5)
                driver.save_screenshot(str(out))
            finally:
                quit_chrome(driver)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
