"""The algorithm register's page (`devices export --format algorithms-html`) in chromium: on a
390 px phone, in Dutch and English, nothing scrolls sideways, the definition lists are one
column, and the page loads nothing from elsewhere."""

from __future__ import annotations

import pytest

from sensorpipe.protocol.registry import NetworkInfo, Registry
from sensorpipe.query.algorithm_page import to_html
from sensorpipe.query.algorithms import Lang, entry_fields
from tests.integration.test_dashboard import chromium_path

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_the_page_fits_a_phone(lang: Lang) -> None:
    from playwright.sync_api import sync_playwright

    network = NetworkInfo(operator="Gemeente Utrecht", contact="lucht@utrecht.nl")
    page_html = to_html(entry_fields(Registry(network=network), lang=lang), network, lang)
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.on("request", lambda r: requests.append(r.url))
            page.set_content(page_html)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the {lang} page scrolls sideways by {overflow} px"
            # Each label sits above its value: one column, both as wide as the article.
            dt = page.locator("article dt").first.bounding_box()
            dd = page.locator("article dd").first.bounding_box()
            assert dt is not None and dd is not None
            assert dd["y"] >= dt["y"] + dt["height"] and abs(dd["x"] - dt["x"]) < 1
            assert page.locator("article").count() == 5
        finally:
            browser.close()
    assert requests == []
