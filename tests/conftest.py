"""Shared fixtures. Tests use real components: pretrained CHGNet weights from the chgnet wheel,
real VASP/CP2K outputs under tests/test_data/, real maggma stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
TEST_DATA = Path(__file__).parent / "test_data"


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("MFAL_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def test_data() -> Path:
    """Folder of real reference calculations copied into the repo (see its README)."""
    return TEST_DATA


@pytest.fixture(scope="session")
def lifepo4():
    """The 28-atom olivine LiFePO4 cell that ships with pymatgen."""
    from mfal.explore.structures import lifepo4_structure

    return lifepo4_structure()


@pytest.fixture(scope="session")
def browser():
    """A real headless Chromium (Debian ``chromium`` + ``chromium-driver``, installed by .ci/run) driven by
    selenium: ``browser(url, screenshot=PATH) -> (driver, console_messages)``; the driver stays open for
    DOM queries until the session ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-dev-shm-usage "
        "--disable-background-networking --disable-component-update --disable-sync --window-size=1280,800"
    ).split():
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.execute_cdp_cmd(  # the viewport itself is 1280x800 (window-size counts the browser frame)
        "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    )

    def load(url: str, screenshot: Path | None = None):
        driver.get(url)
        if screenshot is not None:
            driver.save_screenshot(str(screenshot))
        return driver, driver.get_log("browser")

    yield load
    driver.quit()
