"""The token viewer in a real browser: Debian's headless Chromium driven by Playwright opens the
HTML `nla explain --html` writes, and a click, a hover or an arrow key shows the right token's
explanation. No network is touched (every request is recorded and must be the file itself).

`.ci/run` installs Chromium (`.ci/chromium`) and sets NLA_REQUIRE_BROWSER=1, so in CI a missing
browser fails this test instead of skipping it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from nla_variants.artifacts.loading import locate
from nla_variants.explain.explain import ExplainResult, ExplainSettings, TextInput, explain
from nla_variants.explain.viewer import write_html

pytestmark = pytest.mark.browser
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TEXT = "The harbor lights came on one by one, and the boats turned for home."


def chromium() -> str:
    """The system Chromium, or a failure (CI) / skip (elsewhere) saying what is missing."""
    path = os.environ.get("NLA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is missing: pip install -e '.[dev]'"
    if not Path(path).is_file():
        missing = f"no Chromium at {path}: run .ci/chromium (apt-get install chromium)"
    if missing:
        if os.environ.get("NLA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"NLA_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=FLAGS
        )
        yield context
        context.close()


def open_page(browser, path: Path):
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    return page, errors, requests


def shown(record: dict) -> str:
    """What the panel must show for a record's first sample."""
    text = record["explanations"][0]
    return text if text is not None else record["raw"][0]


@pytest.fixture(scope="module")
def explained(tmp_path_factory, tiny_model_dir, trained_run) -> tuple[Path, ExplainResult]:
    run = trained_run(tmp_path_factory.mktemp("viewer-run"), tiny_model_dir)
    settings = ExplainSettings(max_new_tokens=10, precision="fp32", device="cpu")
    result = explain(locate(run), [TextInput(TEXT, "--text")], settings, progress=False)
    path = tmp_path_factory.mktemp("viewer") / "explain.html"
    write_html(path, result, "tiny NLA")
    return path, result


def test_clicking_a_token_shows_its_explanation(browser, explained):
    path, result = explained
    page, errors, requests = open_page(browser, path)
    tokens = page.locator(".tok.x")
    assert tokens.count() == len(result.records)
    for i in (3, 7):
        tokens.nth(i).click()
        panel = page.locator("#panel").inner_text()
        record = result.records[i]
        assert f"at position {record['position']}" in panel
        assert " ".join(shown(record).split()) in " ".join(panel.split())
        assert "text-only baseline" in panel and record["baseline"]["explanation"] in panel
    assert errors == [] and requests == [path.as_uri()]


def test_arrow_keys_and_hover_move_between_tokens(browser, explained):
    path, result = explained
    page, errors, _ = open_page(browser, path)
    page.locator(".tok.x").nth(2).click()
    page.keyboard.press("ArrowRight")
    assert page.locator("#panel").get_attribute("data-record") == "3"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.locator("#panel").get_attribute("data-record") == "1"
    page.keyboard.press("End")
    assert page.locator("#panel").get_attribute("data-record") == str(len(result.records) - 1)
    page.locator(".tok.x").nth(5).hover()
    assert page.locator("#panel").get_attribute("data-record") == "5"
    assert errors == []


def test_generated_text_is_shown_as_text_never_run(browser, tmp_path):
    hostile = "</script><script>document.title='pwned'</script><b>bold</b>"
    result = ExplainResult(
        records=[
            {
                "text_index": 0,
                "text_id": None,
                "position": 1,
                "token": " b",
                "token_id": 1,
                "norm": 1.0,
                "explanations": [hostile, None],
                "raw": [None, "<explanation>never closed"],
                "quote_rate": [0.0, None],
                "cos": [0.5, 0.0],
                "cos_shuffled": [0.1, 0.0],
                "fve": [0.2, -1.0],
                "fve_shuffled": [-0.3, -1.0],
            }
        ],
        documents=[{"index": 0, "where": "--text", "id": None, "tokens": ["a", " b"]}],
        summary={"score": "fve", "target": "tiny", "layer": 2, "vectors": "activations"},
    )
    path = tmp_path / "hostile.html"
    write_html(path, result, "hostile <title>")
    page, errors, _ = open_page(browser, path)
    page.locator(".tok.x").first.click()
    panel = page.locator("#panel").inner_text()
    assert hostile in panel and "never closed" in panel and "sample 2" in panel
    assert page.title() == "hostile <title>" and page.locator("#panel b").count() == 0
    assert errors == []
