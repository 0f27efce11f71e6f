"""The catalog's evidence in a real browser: a damaged unit and a swapped product, each declared
as a registered SKU, shown to the operator beside the SKU's closest catalog photo, with the
anomaly heatmap over the returned photo (Debian Chromium through Playwright, as
tests/test_ui_browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bundle_factory import CLEAN_ITEM, build_bundle
from catalog_photos import damaged_photo, other_product, product_photos
from conftest import API_KEYS, KEYS
from live_server import CHROMIUM, CHROMIUM_ARGS, serve_in_thread

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]


@pytest.fixture
def catalog_server(tmp_path: Path) -> Iterator[str]:
    from inspection.service.app import create_app
    from inspection.service.settings import Settings

    bundle = build_bundle(tmp_path / "bundle", biases=CLEAN_ITEM)  # only the catalog can flag
    app = create_app(Settings(data_dir=tmp_path / "data", bundle_dir=bundle, api_keys=API_KEYS))
    with serve_in_thread(app) as base:
        yield base


def returned(base: str, return_id: str, photo: bytes) -> dict[str, object]:
    answer = httpx.post(f"{base}/v1/inspections", headers={"X-API-Key": KEYS["station"]},
                        files=[("photos", ("returned.jpg", photo, "image/jpeg"))],
                        data={"return_id": return_id, "sku": "PHONE-X"}, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_operator_sees_the_returned_photo_beside_the_closest_catalog_photo(
        catalog_server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    expect, sync_playwright = sync_api.expect, sync_api.sync_playwright
    files = [("photos", (f"ref{i}.jpg", data, "image/jpeg")) for i, data in enumerate(product_photos(10))]
    registered = httpx.put(f"{catalog_server}/v1/catalog/PHONE-X", headers={"X-API-Key": KEYS["admin"]},
                           files=files, data={"category": "phone"}, timeout=60)
    assert registered.status_code == 200, registered.text
    damaged = returned(catalog_server, "RMA-DENT", damaged_photo())
    swapped = returned(catalog_server, "RMA-SWAP", other_product())
    assert "anomaly" in {flag["kind"] for flag in damaged["flags"]}  # type: ignore[union-attr]
    assert "item_mismatch" in {flag["kind"] for flag in swapped["flags"]}  # type: ignore[union-attr]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{catalog_server}/ui/items/{damaged['id']}")
            page.get_by_label("Operator API key").fill(KEYS["operator"])
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Return RMA-DENT")
            photo = page.get_by_alt_text("Photo 1 of return RMA-DENT")
            reference = page.get_by_alt_text("Closest catalog photo of SKU PHONE-X for photo 1")
            heatmap = page.get_by_alt_text("Heatmap of anomaly on photo 1")
            for image in (photo, reference, heatmap):
                expect(image).to_be_visible()
                assert image.evaluate("img => img.complete && img.naturalWidth > 0")
            left, right = photo.bounding_box(), reference.bounding_box()
            assert left and right and right["x"] >= left["x"] + 0.9 * left["width"]  # side by side
            assert abs(right["y"] - left["y"]) < 5  # on one row
            expect(page.locator("#reasons")).to_contain_text("unlike any good photo of SKU PHONE-X")
            expect(page.get_by_text("Closest catalog photo", exact=False).first).to_contain_text("similarity")
            page.screenshot(path=str(tmp_path / "catalog-anomaly.png"), full_page=True)

            page.goto(f"{catalog_server}/ui/items/{swapped['id']}")
            expect(page.get_by_role("heading", level=1)).to_have_text("Return RMA-SWAP")
            expect(page.locator("#reasons")).to_contain_text("does not look like SKU PHONE-X")
            swap_reference = page.get_by_alt_text("Closest catalog photo of SKU PHONE-X for photo 1")
            expect(swap_reference).to_be_visible()
            assert swap_reference.evaluate("img => img.complete && img.naturalWidth > 0")
            page.screenshot(path=str(tmp_path / "catalog-swap.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()
