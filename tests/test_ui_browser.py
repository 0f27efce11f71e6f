"""The operator page in a real browser: the app under uvicorn on a free loopback port, Debian's
Chromium driven by Playwright, one review clicked through from sign-in to the stored answer.

Needs /usr/bin/chromium (`apt-get install chromium`, or `make browser`; another binary by
RETURNS_TEST_CHROMIUM=/path); skips without it. Playwright's own browser
download (`playwright install`) is never used: nothing is fetched at test time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import API_KEYS, KEYS, encode, textured_photo
from live_server import CHROMIUM, CHROMIUM_ARGS, serve_in_thread

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,  # ~10 s: a browser start and a dozen pages
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]


@pytest.fixture
def live_server(tmp_path: Path, cracked_bundle: Path) -> Iterator[str]:
    """The real app (lifespan, migrations, model) served by uvicorn in a background thread."""
    from inspection.service.app import create_app
    from inspection.service.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", bundle_dir=cracked_bundle, api_keys=API_KEYS))
    with serve_in_thread(app) as base:
        yield base


def submit_flagged_item(base: str, return_id: str) -> str:
    """A station posts one photo; the cracked bundle flags a crack and a missing charger."""
    photo = encode(textured_photo(480, 360, seed=3))
    answer = httpx.post(f"{base}/v1/inspections", headers={"X-API-Key": KEYS["station"]},
                        files=[("photos", ("tray.jpg", photo, "image/jpeg"))],
                        data={"return_id": return_id, "sku": "PHONE-X", "category": "phone"},
                        timeout=30)
    assert answer.status_code == 201, answer.text
    assert {"damage_found", "accessory_missing"} <= {flag["kind"] for flag in answer.json()["flags"]}
    return answer.json()["id"]


def test_operator_reviews_a_flagged_item_in_chromium(live_server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    expect, sync_playwright = sync_api.expect, sync_api.sync_playwright

    inspection_id = submit_flagged_item(live_server, "RMA-1001")
    following_id = submit_flagged_item(live_server, "RMA-1002")
    operator = {"X-API-Key": KEYS["operator"]}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            problems: list[str] = []  # CSP violations, failed loads, script errors
            page.on("console", lambda message: problems.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{live_server}/ui/")
            page.screenshot(path=str(tmp_path / "login.png"))
            page.get_by_label("Operator API key").fill(KEYS["operator"])
            page.get_by_role("button", name="Sign in").click()
            problems.clear()  # the sign-in page itself came with a 401, as it should

            expect(page.get_by_role("heading", level=1)).to_contain_text("waiting for review")
            expect(page.get_by_role("row")).to_have_count(3)  # header + two items, oldest first
            expect(page.get_by_role("row").nth(1)).to_contain_text("RMA-1001")
            page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)
            page.get_by_role("link", name="RMA-1001").click()

            expect(page.get_by_role("heading", level=1)).to_have_text("Return RMA-1001")
            photo = page.get_by_alt_text("Photo 1 of return RMA-1001")
            heatmap = page.get_by_alt_text("Heatmap of crack on photo 1")
            expect(photo).to_be_visible()
            expect(heatmap).to_be_visible()  # the first flagged label's overlay is on at first
            for image in (photo, heatmap):  # loaded and decoded, not a broken-image icon
                assert image.evaluate("img => img.complete && img.naturalWidth > 0")
            reasons = page.locator("#reasons")
            expect(reasons).to_contain_text("crack found with probability")
            expect(reasons).to_contain_text("charger is part of the phone kit")
            page.get_by_role("button", name="crack").click()  # toggles the overlay off
            expect(heatmap).to_be_hidden()
            page.keyboard.press("h")  # the `h` shortcut cycles it back on
            expect(heatmap).to_be_visible()
            page.screenshot(path=str(tmp_path / "item.png"), full_page=True)

            # The operator sees a scratch, not a crack, and the charger in the tray.
            page.get_by_role("radio", name="C", exact=True).check()
            page.get_by_role("checkbox", name="crack").uncheck()
            page.get_by_role("checkbox", name="scratch").check()
            page.get_by_role("checkbox", name="charger").check()
            page.get_by_label("Disposition").select_option("refurbish")
            page.get_by_label("Note").fill("hairline scratch, charger under the box")
            page.get_by_role("button", name="Submit correction").click()

            # On to the next item, which the `c` shortcut confirms as the model answered it.
            expect(page.get_by_text("Review of return RMA-1001 saved.")).to_be_visible()
            expect(page.get_by_role("heading", level=1)).to_have_text("Return RMA-1002")
            expect(page.locator("html[data-shortcuts='on']")).to_have_count(1)  # keys are live
            page.keyboard.press("c")
            expect(page.get_by_text("Review of return RMA-1002 saved.")).to_be_visible()
            expect(page.get_by_text("Nothing to review")).to_be_visible()
            page.screenshot(path=str(tmp_path / "done.png"), full_page=True)

            # A second review of the same item (another operator was faster): a clear message.
            page.go_back()
            expect(page.get_by_role("heading", level=1)).to_have_text("Return RMA-1002")
            page.get_by_role("button", name="Confirm the model's answer").click()
            expect(page.get_by_role("alert")).to_contain_text("already reviewed by olga")
            page.screenshot(path=str(tmp_path / "conflict.png"), full_page=True)
            assert [p for p in problems if "409" not in p] == []  # the refused POST logs its 409
        finally:
            browser.close()

    stored = httpx.get(f"{live_server}/v1/inspections/{inspection_id}", headers=operator, timeout=10).json()
    assert stored["status"] == "reviewed"
    assert stored["review"]["decision"] == "correct"
    assert stored["review"]["reviewer"] == "olga"
    assert stored["review"]["labels"]["condition"] == ["C"]
    assert stored["review"]["labels"]["damage"] == ["scratch"]
    assert "charger" in stored["review"]["labels"]["accessories"]
    assert stored["review"]["disposition"] == "refurbish"
    confirmed = httpx.get(f"{live_server}/v1/inspections/{following_id}", headers=operator,
                          timeout=10).json()
    assert confirmed["review"]["decision"] == "confirm"
    queue = httpx.get(f"{live_server}/v1/review-queue", headers=operator, timeout=10).json()
    assert queue["total"] == 0
    assert inspection_id not in [item["id"] for item in queue["items"]]
