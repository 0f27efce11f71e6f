"""The README's case flow in a real browser: the default bundle under uvicorn, a customer's
photos of a return and then the dock's (the same phone, cracked in transit; another return where
a different product arrived), the return's timeline with the comparison pair and heatmaps in
Debian's Chromium, and the evidence packet rendered there too. Screenshots go to tmp_path, or to
RETURNS_SCREENSHOTS when set (how docs/case-*.jpg were made)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import API_KEYS, KEYS
from live_server import CHROMIUM, CHROMIUM_ARGS, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "datasets" / "examples"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,  # the default bundle and a browser: ~15 s
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]


@pytest.fixture
def default_server(tmp_path: Path) -> Iterator[str]:
    from inspection.service.app import create_app
    from inspection.service.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", bundle_dir=ROOT / "models" / "default",
                              api_keys=API_KEYS))
    with serve_in_thread(app) as base:
        yield base


def post(base: str, role: str, return_id: str, names: list[str]) -> dict:
    files = [("photos", (name, (EXAMPLES / name).read_bytes(), "image/jpeg")) for name in names]
    answer = httpx.post(f"{base}/v1/inspections", headers={"X-API-Key": KEYS[role]}, files=files,
                        data={"return_id": return_id, "category": "phone", "source": role},
                        timeout=60)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_customer_then_dock_photos_make_a_case_with_flags_timeline_and_evidence(
        default_server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    expect, sync_playwright = sync_api.expect, sync_api.sync_playwright
    shots = Path(os.environ.get("RETURNS_SCREENSHOTS", tmp_path))
    customer_photos = ["return_customer_1.jpg", "return_customer_2.jpg"]
    customer = post(default_server, "customer", "RMA-2001", customer_photos)
    assert customer["case_comparison"]["status"] == "not_compared"
    dock = post(default_server, "station", "RMA-2001", ["return_dock_1.jpg", "return_dock_2.jpg"])
    kinds = {flag["kind"]: flag for flag in dock["flags"]}
    assert "new_damage_since_request" in kinds and "changed_since_request" not in kinds
    assert kinds["new_damage_since_request"]["label"] == "crack"
    post(default_server, "customer", "RMA-2002", customer_photos)
    swapped = post(default_server, "station", "RMA-2002", ["return_dock_other_item.jpg"])
    assert "changed_since_request" in {flag["kind"] for flag in swapped["flags"]}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{default_server}/ui/login")
            page.get_by_label("Operator API key").fill(KEYS["operator"])
            page.get_by_role("button", name="Sign in").click()
            page.goto(f"{default_server}/ui/items/{dock['id']}")
            page.get_by_role("link", name="Return timeline").click()

            expect(page.get_by_role("heading", level=1)).to_have_text("Return RMA-2001")
            expect(page.locator("#timeline li")).to_have_count(2)
            pair = page.locator('[data-kind="new_damage_since_request"]')
            expect(pair).to_contain_text("raised")
            expect(pair).to_contain_text("crack")
            images = pair.locator("img")
            expect(images).to_have_count(4)  # both photos, each with its crack map
            for index in range(4):
                assert images.nth(index).evaluate("img => img.complete && img.naturalWidth > 0")
            page.screenshot(path=str(shots / "case-timeline.jpg"), type="jpeg", quality=70)

            page.get_by_role("link", name="Evidence packet (whole return)").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Evidence: return RMA-2001")
            expect(page.locator("#check-new_damage_since_request")).to_contain_text("raised")
            body = page.locator("body")
            for name in customer_photos + ["return_dock_1.jpg", "return_dock_2.jpg"]:
                expect(body).to_contain_text(hashlib.sha256((EXAMPLES / name).read_bytes()).hexdigest())
            rendered = page.locator("img")
            assert rendered.count() >= 4 + 2  # four photos, the pair's maps
            assert all(rendered.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
                       for i in range(rendered.count()))
            expect(body).to_contain_text(dock["model"]["model_id"])
            expect(body).to_contain_text("fitted by `case fit`")
            page.screenshot(path=str(shots / "case-evidence.jpg"), type="jpeg", quality=70)
            assert problems == []
        finally:
            browser.close()
