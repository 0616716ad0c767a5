"""What the web tests share (no tests here): a station with the web on, a
headless Chromium from Debian's packages driven by Selenium, and real MP4s.

A test that needs the browser fails, never skips, when it is missing: CI
installs `chromium chromium-driver fonts-noto-cjk` (scripts/setup.sh)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENS = Path(__file__).resolve().parent.parent / "docs" / "screens"


def enable_web(config: Path, port: int, extra: str = "") -> str:
    """Turn the web on in a `sim station` config; returns the base URL."""
    with open(config, "a", encoding="utf-8") as f:
        f.write(f'\n[web]\nenabled = true\nlisten = "127.0.0.1:{port}"\n{extra}')
    return f"http://127.0.0.1:{port}"


def wait_http(url: str, timeout: float = 30) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered") from None
            time.sleep(0.1)


def browser(profile: Path):  # -> selenium WebDriver
    """Debian's headless Chromium through its chromedriver (no download)."""
    for p in (CHROMIUM, CHROMEDRIVER):
        if not p.exists():
            pytest.fail(f"{p} is missing: apt-get install chromium chromium-driver fonts-noto-cjk")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--window-size=1280,900",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def wait_js(driver, script: str, timeout: float = 30, what: str = "page condition"):
    """Poll *script* (a JS expression) in the page until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {script}")
        time.sleep(0.1)


def screenshot(driver, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / name
    driver.save_screenshot(str(path))
    return path


def mp4(path: Path, created: str, seconds: int = 4) -> None:
    """A real clip the browser plays: H.264 in MP4, with a creation time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=duration={seconds}:size=320x240:rate=15", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-preset", "ultrafast", "-movflags", "+faststart", "-metadata", f"creation_time={created}",
                    str(path)], check=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of *pid* and its threads so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
