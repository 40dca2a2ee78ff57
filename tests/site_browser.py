"""Headless Chromium for the site tests: Debian's `chromium` driven by Selenium through Debian's `chromedriver`.

No browser or driver is downloaded: both paths are given explicitly, so Selenium Manager never runs.
Also a script: `python tests/site_browser.py SITE_DIR OUT_PNG [WIDTH [HEIGHT [PAGE]]]` screenshots SITE_DIR/PAGE
(default index.html; PAGE#ID scrolls to that element; HEIGHT `full`: the whole page's height) as a 128-colour PNG, small enough to commit (how
results/site/leaderboard.png is made).
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags that work in a 2-core container without a display, a GPU or a network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--allow-file-access-from-files"]
DESKTOP = (1280, 900)
PHONE = (390, 844)


@contextlib.contextmanager
def chromium():
    """A fresh headless Chromium (own profile dir), closed on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        set_viewport(driver, *DESKTOP)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def set_viewport(driver, width: int, height: int) -> None:
    """The page's viewport exactly (a window size would include browser chrome); mobile at phone widths."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def console_errors(driver) -> list[str]:
    """SEVERE browser-log entries since the last call: JavaScript errors and resources that failed to load."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def screenshot(driver, path: Path, full_page: bool = False) -> Path:
    """PNG of the viewport, or of the whole page's height when full_page."""
    import base64

    params = {"format": "png"}
    if full_page:
        w = driver.execute_script("return document.documentElement.scrollWidth")
        h = driver.execute_script("return document.documentElement.scrollHeight")
        params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": h, "scale": 1})
    data = driver.execute_cdp_cmd("Page.captureScreenshot", params)["data"]
    Path(path).write_bytes(base64.b64decode(data))
    return Path(path)


if __name__ == "__main__":
    from PIL import Image

    site, out = Path(sys.argv[1]), Path(sys.argv[2])
    width = int(sys.argv[3]) if len(sys.argv) > 3 else DESKTOP[0]
    full = len(sys.argv) > 4 and sys.argv[4] == "full"
    height = DESKTOP[1] if len(sys.argv) <= 4 or full else int(sys.argv[4])
    page, _, anchor = (sys.argv[5] if len(sys.argv) > 5 else "index.html").partition("#")  # page.html#id: scrolled
    with chromium() as d:
        set_viewport(d, width, height)
        d.get((site / page).resolve().as_uri() + (f"#{anchor}" if anchor else ""))
        screenshot(d, out, full_page=full)
    # a palette of 128 colours keeps text crisp at a third of the size
    Image.open(out).convert("RGB").quantize(colors=128).save(out, optimize=True)
    print(out, out.stat().st_size, "bytes")
