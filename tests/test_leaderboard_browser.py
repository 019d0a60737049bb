"""The rendered page in a real browser: headless Chromium through Playwright, offline, every figure drawn.

Needs the ``browser`` extra (playwright) and a Chromium executable: ``$HARNESS_CHROMIUM``, or
``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH (Debian's chromium package;
``playwright install`` is not needed). A full-page screenshot is written under pytest's tmp
path, printed, and copied to ``$HARNESS_SCREENSHOT_DIR`` when that is set.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests import leaderboard_records as lr

pytest.importorskip("matplotlib", reason="the render extra (pip install 'harness[render]') is not installed")
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install 'harness[browser]')")


def chromium() -> str | None:
    explicit = os.environ.get("HARNESS_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None)


def test_the_page_renders_offline_with_every_figure(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from harness.leaderboard.render import render

    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium: set HARNESS_CHROMIUM or put chromium / chromium-browser / google-chrome on PATH")
    newer = lr.record(
        lr.variant("20261201T000000Z-spine-newer", "2026-12-01T00:00:00Z", **{"cervical.disc": "a1b2c3d4"})
    )
    written = render([lr.record(), newer], tmp_path / "site", generated=datetime(2026, 12, 1, tzinfo=UTC))
    n_figures = sum(name.startswith("figures/") for name in written)
    url = written["index.html"].resolve().as_uri()

    console: list[str] = []
    errors: list[str] = []
    failed: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, wait_until="load")
            boxes = page.locator("figure svg").evaluate_all(
                "els => els.map(e => { const r = e.getBoundingClientRect();"
                " const s = getComputedStyle(e); return [r.width, r.height, s.visibility, s.display]; })"
            )
            shot = tmp_path / "leaderboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    print(f"\nscreenshot: {shot}")
    if os.environ.get("HARNESS_SCREENSHOT_DIR"):
        target = Path(os.environ["HARNESS_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)
        print(f"screenshot copied to {target / shot.name}")
    assert not [m for m in console if m.startswith("error")], console
    assert not errors and not failed
    # offline: the page itself and its inline data: images, nothing else
    assert requests and all(r.startswith(("file://", "data:")) for r in requests), requests
    assert len(boxes) == n_figures == 20
    for width, height, visibility, display in boxes:
        assert width > 0 and height > 0 and visibility == "visible" and display != "none"
    assert shot.stat().st_size > 0
