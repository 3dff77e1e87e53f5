"""Debian's chromium driven by Selenium through the system chromedriver (no driver download)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
         "--mute-audio"]
MISSING = ("the browser tests need Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`, "
           "which `make test` does as root) and selenium")


def browser_missing() -> str | None:
    """Why no browser can be started here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return MISSING
    if shutil.which("chromium") is None or not CHROMEDRIVER.exists():
        return MISSING
    return None


def chrome(width: int = 1280, height: int = 900):
    """A headless chromium with a fresh profile (removed by `quit_chrome`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp(prefix="mixma-chromium-")
    for flag in [*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.mixma_profile = profile
    return driver


def quit_chrome(driver) -> None:
    driver.quit()
    shutil.rmtree(driver.mixma_profile, ignore_errors=True)
