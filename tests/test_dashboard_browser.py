"""The emulator's dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven
through Playwright's Python package, offline, against the emulator on loopback.

Nothing here waits for time to pass: Playwright's ``expect`` waits for what the page shows, a
training is held "running" by a photo server of the test's own that answers only when told to,
and a MutationObserver installed in the page records every state a job's row shows. A screenshot
of each state goes to ``artifacts/dashboard/`` under the pytest root directory (gitignored).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, Page, Route, async_playwright, expect
from yarl import URL

from aiportrait import RetryPolicy
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import ModelIdError, PhotoCountWarning, RateLimited
from aiportrait.samples import SamplePhotos
from aiportrait.uploads import OSSUploader
from tests._chromium import CHROMIUM, MISSING, launch_options

ONCE = RetryPolicy(attempts=1, charged_attempts=1)

#: What the page renders from the state; the server's markup and the script's must agree.
RENDERED = [
    "#jobs tbody",
    "#portraits .gallery",
    "#objects ul",
    "#charges tbody",
    "#duplicates ul",
    "#counters",
    "#requests tbody",
]

#: Records, per job id, every state its row showed (installed in the page by the tests).
RECORD_STATES = """() => {
  window.jobStates = {};
  const seen = (id, state) => {
    const states = (window.jobStates[id] = window.jobStates[id] || []);
    if (states[states.length - 1] !== state) states.push(state);
  };
  new MutationObserver((records) => {
    const rows = new Set();
    for (const r of records) {
      if (r.type === "attributes" && r.attributeName === "data-state") {
        seen(r.target.dataset.jobId, r.oldValue);
        rows.add(r.target);
      }
      for (const node of r.addedNodes) if (node.dataset && node.dataset.jobId) rows.add(node);
    }
    for (const row of rows) seen(row.dataset.jobId, row.dataset.state);
  }).observe(document.querySelector("#jobs tbody"),
             {childList: true, attributes: true, attributeOldValue: true, subtree: true,
              attributeFilter: ["data-state"]});
}"""


@pytest.fixture
def media(sample_media: SamplePhotos) -> SamplePhotos:
    return sample_media


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Path:
    """Where the screenshots go: ``artifacts/dashboard/`` under the pytest root directory."""
    folder = request.config.rootpath / "artifacts" / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def emu(media: SamplePhotos, tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.2, serve_dir=media.folder, data_dir=tmp_path / "d") as e:
        yield e


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Headless Chromium with a fresh profile; without chromium the tests fail (``scripts/test``
    installs it as root)."""
    if not CHROMIUM.exists():
        pytest.fail(MISSING)
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile", **launch_options()
        )
        try:
            yield context
        finally:
            await context.close()


async def open_dashboard(browser: BrowserContext, emu: Emulator) -> Page:
    """The dashboard, once its stream is connected and the state it read applied."""
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(emu.url + "/")
    await expect(page.get_by_test_id("live")).to_have_text("live")
    assert errors == []
    return page


@pytest.fixture
async def gated(media: SamplePhotos) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A loopback server of the sample photos that answers only once its gate is set: a
    training fetching its photos from it stays "running" until the test says."""
    gate = asyncio.Event()

    async def photo(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        return web.FileResponse(media.path(request.match_info["name"]))

    app = web.Application()
    app.router.add_get("/{name}", photo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", gate
    finally:
        gate.set()
        await runner.cleanup()


async def test_a_training_moves_through_its_states_live(
    browser: BrowserContext,
    emu: Emulator,
    media: SamplePhotos,
    gated: tuple[str, asyncio.Event],
    shots: Path,
) -> None:
    base, gate = gated
    asked: list[str] = []
    browser.on("request", lambda request: asked.append(request.url))
    page = await open_dashboard(browser, emu)
    await page.evaluate(RECORD_STATES)
    async with emu.session() as session:
        with pytest.warns(PhotoCountWarning):
            job = await session.train([f"{base}/{name}" for name in media.astronaut[:2]])
        row = page.locator(f'#jobs tbody tr[data-job-id="{job.job_id}"]')
        await expect(row).to_have_attribute("data-state", "running")
        await page.screenshot(path=shots / "training-running.png", full_page=True)
        gate.set()
        await session.wait(job)
    await expect(row).to_have_attribute("data-state", "succeeded")
    await expect(row.locator("td").nth(6)).not_to_have_text("\u2014")  # its duration
    await page.screenshot(path=shots / "training-succeeded.png", full_page=True)
    states = await page.evaluate("window.jobStates")
    assert states[str(job.job_id)] == ["queued", "running", "succeeded"]
    # Photos the browser cannot load from the emulator are counted, not shown.
    await expect(row.locator("td.thumbs")).to_contain_text("2 photos")
    # Live, not polling: one stream (its hello holds the state), the state never read again.
    assert [url for url in asked if "/_dashboard/events" in url] == [emu.url + "/_dashboard/events"]
    assert [url for url in asked if "/api/state" in url] == []


async def test_portraits_and_a_duplicate_charge(
    browser: BrowserContext, emu: Emulator, media: SamplePhotos, shots: Path
) -> None:
    page = await open_dashboard(browser, emu)
    await expect(page.locator("#duplicates li")).to_have_text(["no duplicates"])
    photos = [emu.media_url(name) for name in media.astronaut[:2]]
    template = emu.media_url(media.astronaut_template)
    async with emu.session() as session:
        with pytest.warns(PhotoCountWarning):
            training = await session.train(photos)
        model_id = (await session.wait(training)).model_id
        trained = page.locator(f'#jobs tbody tr[data-job-id="{training.job_id}"]')
        await expect(trained.locator("td.thumbs img")).to_have_count(2)  # the photos it took
        first = await session.create(model_id, template)
        gallery = page.locator("#portraits figure")
        await expect(gallery).to_have_count(1)
        await expect(gallery.first.locator("> img")).to_have_js_property("naturalWidth", 768)
        full = await gallery.first.locator("a.full").get_attribute("href")
        assert full is not None
        answer = await page.request.get(emu.url + full if full.startswith("/") else full)
        assert answer.ok and answer.headers["content-type"].startswith("image/")
        assert await answer.body() == first.image
        await page.screenshot(path=shots / "portrait.png", full_page=True)

        # The same create sent again (an application retrying on its own): charged twice.
        await session.create(model_id, template)
    await expect(gallery).to_have_count(2)  # newest first
    newest = await gallery.first.get_attribute("data-job-id")
    rows = page.locator("#jobs tbody tr")
    assert await rows.first.get_attribute("data-job-id") == newest
    flagged = page.locator("#duplicates li[data-digest]")
    await expect(flagged).to_have_count(1)
    await expect(flagged).to_contain_text("/api/v1/aigc_images/create")
    await expect(flagged).to_contain_text("2 times")
    await expect(page.locator("#duplicates")).to_have_class("flagged")
    charge = page.locator(f'#charges tr[data-app-id="{emu.app_id}"] td')
    await expect(charge).to_have_text([emu.app_id, "1", "2", "no quota"])
    await page.screenshot(path=shots / "duplicate.png", full_page=True)


async def test_a_fault_switched_on_from_the_page_answers_the_next_request(
    browser: BrowserContext, emu: Emulator, media: SamplePhotos, shots: Path
) -> None:
    page = await open_dashboard(browser, emu)
    form = page.locator("#faults form")
    await form.get_by_label("rate_429").fill("1")
    await form.get_by_role("button", name="Apply faults").click()
    await expect(form.locator("output")).to_contain_text("rate_429=1")
    assert emu.faults.rate_429 == 1.0
    async with emu.session(retry=ONCE) as session:
        with pytest.raises(RateLimited):
            await session.check_images([emu.media_url(media.astronaut[0])])
    newest = page.locator("#requests tbody tr").first
    await expect(newest).to_have_attribute("data-status", "429")
    await expect(newest).to_have_attribute("data-fault", "429")
    await expect(page.locator('#counters [data-counter="faults"] dd')).to_have_text("429: 1")
    await page.screenshot(path=shots / "fault-429.png", full_page=True)

    # A value the emulator refuses: the answer's error shows, the faults stay as they were.
    await form.get_by_label("rate_429").fill("2")
    await form.get_by_role("button", name="Apply faults").click()
    await expect(form.locator("output")).to_contain_text("400")
    await expect(form.locator("output")).to_contain_text("rate_429")
    assert emu.faults.rate_429 == 1.0
    await page.screenshot(path=shots / "fault-refused.png", full_page=True)


async def test_the_faults_form_works_from_the_keyboard(
    browser: BrowserContext, emu: Emulator, media: SamplePhotos
) -> None:
    page = await open_dashboard(browser, emu)
    form = page.locator("#faults form")
    inputs = form.locator("input[name]")
    names = [await i.get_attribute("name") for i in await inputs.all()]
    assert "rate_429" in names and "rate_5xx" in names
    for name in names:  # every input has a label naming it
        await expect(form.get_by_label(name, exact=False).first).to_have_attribute("name", name)
    # Tab reaches every input in order, then the button; typing and Enter apply the form.
    await inputs.first.focus()
    for name in names[1:]:
        await page.keyboard.press("Tab")
        await expect(form.locator(f'input[name="{name}"]')).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(form.get_by_role("button", name="Apply faults")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Shift+Tab")
    field = form.locator(f'input[name="{names[-2]}"]')
    await expect(field).to_be_focused()
    await form.locator('input[name="rate_5xx"]').focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("0.5")
    await page.keyboard.press("Enter")
    await expect(form.locator("output")).to_contain_text("rate_5xx=0.5")
    assert emu.faults.rate_5xx == 0.5


async def served_page(browser: BrowserContext, emu: Emulator) -> Page:
    """The page as the server renders it, its script not loaded."""
    page = await browser.new_page()
    await page.route("**/dashboard.js", lambda route: route.abort())
    await page.goto(emu.url + "/_dashboard/")
    return page


async def test_the_server_and_the_script_render_the_same_markup(
    browser: BrowserContext, emu: Emulator, media: SamplePhotos
) -> None:
    photos = [emu.media_url(name) for name in media.astronaut[:2]]
    async with emu.session() as session:
        with pytest.warns(PhotoCountWarning):
            model_id = (await session.wait(await session.train(photos))).model_id
        await session.create(model_id, emu.media_url(media.astronaut_template))
        await session.create(model_id, emu.media_url(media.astronaut_template))
        with pytest.raises(ModelIdError):  # zero-width characters: escaped by both
            await session.with_options(retry=ONCE).create(
                "zero\u200bwidth\u200d\ufeff", emu.media_url(media.astronaut_template)
            )
        emu.faults = Faults(rate_429=1.0)
        with pytest.raises(RateLimited):
            await session.with_options(retry=ONCE).check_images(photos)
    emu.faults = Faults(drop_before=1.0)  # an answer dropped: its status is "dropped"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            await http.get(emu.url + "/api/v1/async_jobs/1")
    emu.faults = Faults()
    # The server's page as it comes, then the same page once the script has applied the
    # state it read on connecting: the same elements, attributes and text.
    plain = await served_page(browser, emu)
    served = {s: await plain.locator(s).inner_html() for s in RENDERED}
    page = await open_dashboard(browser, emu)
    scripted = {s: await page.locator(s).inner_html() for s in RENDERED}
    assert served["#duplicates ul"].count("data-digest") == 1
    assert served["#portraits .gallery"].count("<figure") == 2
    assert "<td>dropped</td>" in served["#requests tbody"]
    assert "zero\\u200bwidth\\u200d\\ufeff" in served["#jobs tbody"]
    assert served == scripted


async def test_server_text_is_shown_as_text(
    browser: BrowserContext, emu: Emulator, media: SamplePhotos
) -> None:
    """A model id with markup in it shows as text, never as markup, and its control and
    bidirectional characters show as escapes, live and server-rendered."""
    markup = '<img src="x" onerror="window.pwned=1">'
    page = await open_dashboard(browser, emu)
    async with emu.session(retry=ONCE) as session:
        with pytest.raises(ModelIdError):
            await session.create(
                "\u202eevil\x1b[31m\u200b\ufeff\xad\u2060", emu.media_url(media.astronaut_template)
            )
        with pytest.raises(ModelIdError):
            await session.create(markup, emu.media_url(media.astronaut_template))
    for shown in (page, await served_page(browser, emu)):
        row = shown.locator("#jobs tbody tr").first
        await expect(row).to_have_attribute("data-state", "failed")
        await expect(row).to_contain_text(markup)
        assert await shown.locator('#jobs img[src="x"]').count() == 0
        hidden = shown.locator("#jobs tbody tr").nth(1)
        shown_id = "model_id: \\u202eevil\\u001b[31m\\u200b\\ufeff\\u00ad\\u2060"
        await expect(hidden).to_contain_text(shown_id)
        assert not {"\u202e", "\u200b", "\ufeff", "\xad", "\u2060"} & set(await hidden.inner_text())
    assert await page.evaluate("window.pwned") is None


#: Records every text the live indicator shows (installed in the page by the tests).
RECORD_LIVE = """() => {
  const badge = document.querySelector("[data-testid=live]");
  window.liveTexts = [badge.textContent];
  new MutationObserver(() => window.liveTexts.push(badge.textContent))
    .observe(badge, {childList: true, characterData: true, subtree: true});
}"""


async def test_a_page_that_fell_behind_reads_the_state_again(
    browser: BrowserContext, emu: Emulator
) -> None:
    page = await open_dashboard(browser, emu)
    await page.evaluate(RECORD_LIVE)
    for _ in range(1001):  # all at once: the stream cannot send them, it is told to resync
        emu.faults = Faults()
    emu.faults = Faults(rate_429=0.5)
    # The indicator said so, the page connected again and read the state: the last setting.
    await page.wait_for_function(
        "() => window.liveTexts.includes('reconnecting') && window.liveTexts.at(-1) === 'live'"
    )
    await expect(page.locator('#faults input[name="rate_429"]')).to_have_value("0.5")


async def test_the_live_indicator_says_when_the_emulator_is_gone(
    browser: BrowserContext, emu: Emulator
) -> None:
    page = await open_dashboard(browser, emu)
    await emu.close()
    await expect(page.get_by_test_id("live")).to_have_text("reconnecting")


#: WCAG contrast of each element's text against the first opaque background behind it.
CONTRASTS = """(selectors) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (node) => {
    for (; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  return Object.fromEntries(selectors.map((s) => {
    const node = document.querySelector(s);
    const [a, b] = [lum(rgb(getComputedStyle(node).color)), lum(background(node))];
    return [s, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  }));
}"""


async def test_the_page_is_accessible(
    browser: BrowserContext, emu: Emulator, media: SamplePhotos
) -> None:
    async with emu.session(retry=ONCE) as session:
        with pytest.raises(ModelIdError):  # a failed job, a charge: every kind of text shown
            await session.create("no-such-model", emu.media_url(media.astronaut_template))
    page = await open_dashboard(browser, emu)
    for role in ("banner", "navigation", "main"):
        await expect(page.get_by_role(role)).to_have_count(1)
    await expect(page.get_by_role("heading", level=1)).to_have_count(1)
    for name in ("Charges", "Jobs", "Portraits", "Bucket objects", "Faults", "Last requests"):
        await expect(page.get_by_role("heading", name=name, exact=True)).to_have_count(1)
        await expect(page.get_by_role("region", name=name, exact=True)).to_have_count(1)
    await expect(page.get_by_test_id("live")).to_have_attribute("aria-live", "polite")
    await page.keyboard.press("Tab")  # the first stop skips to the tables
    await expect(page.get_by_role("link", name="Skip to the tables")).to_be_focused()
    selectors = [
        "h1", ".status", "[data-testid=live]", "nav a", "caption", "thead th", "#jobs td",
        "#jobs .state", "#jobs .error", "#jobs .tag", "#duplicates li", "#counters dt",
        ".field small", "#faults button",
    ]  # fmt: skip
    contrasts = await page.evaluate(CONTRASTS, selectors)
    assert {s: c for s, c in contrasts.items() if c < 4.5} == {}


async def test_a_deleted_bucket_object_leaves_the_page_live(
    browser: BrowserContext, emu: Emulator, media: SamplePhotos
) -> None:
    page = await open_dashboard(browser, emu)
    item = page.locator('#objects li[data-key="aiportrait/gone.jpg"]')
    async with OSSUploader.for_emulator(emu) as uploader:
        url = await uploader.upload(
            media.path(media.astronaut[0]).read_bytes(), "image/jpeg", "gone.jpg"
        )
        await expect(item).to_have_count(1)
        await uploader.delete([url])
    await expect(item).to_have_count(0)


async def test_without_its_script_the_page_says_connecting_not_reconnecting(
    browser: BrowserContext, emu: Emulator
) -> None:
    page = await served_page(browser, emu)
    badge = page.get_by_test_id("live")
    await expect(badge).to_have_text("connecting\u2026")
    assert await badge.get_attribute("data-live") is None  # not the red "no" style


async def test_a_faults_event_keeps_the_field_being_edited(
    browser: BrowserContext, emu: Emulator
) -> None:
    page = await open_dashboard(browser, emu)
    form = page.locator("#faults form")
    editing = form.locator('input[name="rate_5xx"]')
    await editing.fill("0.25")  # typed, not applied
    await form.locator('input[name="status_5xx"]').focus()
    emu.faults = Faults(rate_5xx=0.5, rate_429=0.5, status_5xx=502)  # changed elsewhere
    await expect(form.locator('input[name="rate_429"]')).to_have_value("0.5")
    await expect(editing).to_have_value("0.25")  # edited: kept
    await expect(form.locator('input[name="status_5xx"]')).to_have_value("503")  # focused: kept
    await form.get_by_role("button", name="Apply faults").click()
    await expect(form.locator("output")).to_contain_text("rate_5xx=0.25")
    assert (emu.faults.rate_5xx, emu.faults.status_5xx) == (0.25, 503)


async def test_a_restarted_emulator_replaces_what_the_page_shows(
    browser: BrowserContext, emu: Emulator, media: SamplePhotos, tmp_path: Path
) -> None:
    """The page reconnects to an emulator started again on the same port and shows its state
    only: the jobs of the one before are gone, the header says when the new one started."""
    page = await open_dashboard(browser, emu)
    async with emu.session() as session:
        with pytest.warns(PhotoCountWarning):
            job = await session.train([emu.media_url(n) for n in media.astronaut[:2]])
    old_row = page.locator(f'#jobs tbody tr[data-job-id="{job.job_id}"]')
    await expect(old_row).to_have_count(1)
    started = await page.locator("header time").get_attribute("datetime")
    port = URL(emu.url).port
    await emu.close()
    await expect(page.get_by_test_id("live")).to_have_text("reconnecting")
    async with Emulator(port=port, serve_dir=media.folder, data_dir=tmp_path / "again") as again:
        assert again.url == emu.url
        await expect(page.get_by_test_id("live")).to_have_text("live", timeout=15_000)
        await expect(page.locator("#jobs tbody tr")).to_have_count(0)
        assert await page.locator("header time").get_attribute("datetime") != started


async def test_a_stream_refused_is_connected_again(browser: BrowserContext, emu: Emulator) -> None:
    """A stream answered other than 200 (the 503 of one stream too many) is not retried by the
    browser: the page says "disconnected" and connects again on its own."""
    page = await browser.new_page()
    refused, seen = asyncio.Event(), asyncio.Event()

    async def once_refused(route: Route) -> None:
        if refused.is_set():
            await seen.wait()  # the next attempt waits until the test saw "disconnected"
            await route.continue_()
        else:
            refused.set()
            await route.fulfill(status=503, json={"error": "32 streams are open"})

    await page.route("**/_dashboard/events", once_refused)
    await page.goto(emu.url + "/")
    badge = page.get_by_test_id("live")
    await expect(badge).to_have_text("disconnected")
    seen.set()
    await expect(badge).to_have_text("live")
