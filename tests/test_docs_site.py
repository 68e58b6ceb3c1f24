"""The documentation site builds, strictly and offline, and cannot drift from the code.

The site is built once for the module, as ``./scripts/docs`` builds it (``zensical build
--strict``: a warning, a broken link or an unresolved reference fails), from a copy of what it
reads, so neither site/ nor the build's cache of the working tree is touched or used, and with
the optional dependencies blocked (the API reference is read from the source, not imported).
Then: every page of docs/ is in the nav and was built; every public name of aiportrait has its
entry in the API reference; the CLI reference is the one the command tree writes; the search
index (and its offline twin, search.js) finds ``CreateConfig``; no page loads anything from
another host; and every example in examples/ is described in examples/README.md. The code
blocks of the pages are run by tests/test_docs_code.py.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

import aiportrait.cli
from tests._chromium import CHROMIUM, CHROMIUM_ARGS, MISSING

try:
    import tomllib
except ImportError:  # Python 3.10: zensical's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: What the build reads: its configuration, the pages, the package (the API reference is read
#: from its source, statically), the griffe extension that reads its docstrings' Sphinx roles,
#: and what it shows of the members, and the files the changelog, examples and benchmark figures
#: pages include.
BUILD_INPUTS = (
    *("zensical.toml", "docs", "aiportrait", "scripts/docs_roles.py", "scripts/docs_members.py"),
    *("CHANGELOG.md", "examples/README.md", "benchmarks/README.md"),
)
#: Every public module: its ``__all__`` is public (tests/test_public_surface.py checks their
#: signatures; the API reference documents them).
PUBLIC_MODULES = (
    "aiportrait",
    "aiportrait.batches",
    "aiportrait.cli",
    "aiportrait.config",
    "aiportrait.emulator",
    "aiportrait.errors",
    "aiportrait.hooks",
    "aiportrait.models",
    "aiportrait.otel",
    "aiportrait.pytest_plugin",
    "aiportrait.samples",
    "aiportrait.sync",
    "aiportrait.temporal",
    "aiportrait.testing",
    "aiportrait.uploads",
)
#: The optional dependencies (the extras'), by import name: the build imports none of them (it
#: reads the package statically), so it works without them; they are blocked in the build here.
OPTIONAL = (
    *("PIL", "alibabacloud_oss_v2", "cryptography", "cv2", "dlib", "face_recognition_models"),
    *("ipywidgets", "numpy", "opentelemetry", "temporalio", "tqdm"),
)
REGENERATE = "./scripts/docs --regenerate"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
CSS_URL = re.compile(r"(?:@import\s+|url\()\s*['\"]?((?:https?:)?//[^'\")\s]+)")


@dataclass(frozen=True)
class Build:
    """A strict build of the site: its exit status, what it said, and where it went."""

    returncode: int
    output: str
    site: Path


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    project = tmp_path_factory.mktemp("project")
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, project / name)
    blocked = tmp_path_factory.mktemp("blocked")
    for name in OPTIONAL:
        (blocked / name).mkdir()
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name}: blocked')")
    run = subprocess.run(
        [sys.executable, "-m", "zensical", "build", "--strict", "--clean"],
        cwd=project,
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(blocked)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return Build(run.returncode, run.stdout + run.stderr, project / "site")


@pytest.fixture(scope="module")
def site(build: Build) -> Path:
    assert build.returncode == 0, build.output
    return build.site


def _nav_pages(entries: list[object]) -> list[str]:
    """The pages a nav lists, in order (``{"Title" = "page.md"}``, ``"page.md"``, sections)."""
    pages: list[str] = []
    for entry in entries:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            pages += _nav_pages(value) if isinstance(value, list) else [str(value)]
    return pages


NAV = _nav_pages(tomllib.loads((ROOT / "zensical.toml").read_text())["project"]["nav"])


def test_the_site_builds_strictly(build: Build) -> None:
    assert build.returncode == 0, build.output
    assert "No issues found" in build.output


def test_griffe_reads_every_docstring_without_a_warning(build: Build) -> None:
    """A docstring griffe cannot read (``a, b: ...`` on one Args line, a parameter the
    signature lacks) is rendered wrong; griffe says so, without failing the strict build."""
    assert [line for line in build.output.splitlines() if "griffe:" in line] == []


def test_every_page_is_in_the_nav_once_and_every_entry_is_a_page() -> None:
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(NAV) == sorted(set(NAV)), "a page is twice in the nav of zensical.toml"
    assert sorted(set(pages) - set(NAV)) == [], "pages of docs/ missing in zensical.toml's nav"
    assert sorted(set(NAV) - set(pages)) == [], "zensical.toml's nav lists pages docs/ lacks"


def test_every_page_of_the_nav_was_built(site: Path) -> None:
    missing = [page for page in NAV if not (site / page).with_suffix(".html").is_file()]
    assert missing == []
    first = (site / NAV[0]).with_suffix(".html").read_text()  # site/index.html, once it is in
    for section in ("API reference", "Changelog"):  # the nav shows them on every page
        assert section in first


def _inventory(site: Path) -> dict[str, tuple[str, str]]:
    """The names the API reference has an entry for (its objects.inv, Sphinx's format), each
    with its role (``py:method``...) and priority (``1`` for an entry, ``2`` for another name
    of it: ``aiportrait.TrainResult`` for ``aiportrait.models.TrainResult``)."""
    header, _, body = (site / "objects.inv").read_bytes().partition(b"zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2")
    lines = zlib.decompress(body).decode().splitlines()
    return {name: (role, priority) for name, role, priority, *_ in map(str.split, lines)}


def test_every_public_name_has_an_entry_in_the_api_reference(site: Path) -> None:
    entries = _inventory(site)
    missing = [
        f"{module}.{name}"
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
        if f"{module}.{name}" not in entries
    ]
    assert missing == [], "add them to a page of docs/reference/ (::: aiportrait.Name)"


def test_a_public_module_shows_its_all_and_nothing_else(site: Path) -> None:
    """``filters = "public"``: a module's type variables and helpers outside ``__all__``
    (``aiportrait.sync.T``, ``aiportrait.models.EXTENSIONS``) have no entry."""
    extra = []
    for name, (_, priority) in _inventory(site).items():
        module, _, short = name.rpartition(".")
        if priority != "1" or module not in PUBLIC_MODULES or name in PUBLIC_MODULES:
            continue  # another name of an entry, a member of a class, a module
        if short not in importlib.import_module(module).__all__:
            extra.append(name)
    assert extra == []


def test_no_special_member_and_no_constructor_of_a_watch_is_shown(site: Path) -> None:
    special = [
        name
        for name, (_, priority) in _inventory(site).items()
        if re.search(r"\.__\w+__$", name) and priority == "1"
    ]
    special.remove("aiportrait.__version__")
    assert special == []
    session = (site / "reference" / "session.html").read_text()
    assert "on_end" not in session  # JobWatch(..., on_end=...) is made by Session.watch


def test_the_sync_facades_methods_have_their_signatures_and_docstrings(site: Path) -> None:
    """scripts/docs_members.py: ``check_images = _blocking(...)`` shows as the method it is."""
    entries = _inventory(site)
    page = (site / "reference" / "sync.html").read_text()
    for name in ("check_images", "train", "create", "watch", "create_many", "plan_many"):
        assert entries[f"aiportrait.sync.Session.{name}"] == ("py:method", "1"), name
    assert "_blocking" not in page
    signatures = re.sub(r"<[^>]+>", "", page)
    assert "-&gt; Iterator[JobUpdate]" in signatures  # watch: a plain iterator of its updates
    assert "Check photos before training: one verdict per photo (free)." in page


def test_the_docstrings_sphinx_roles_are_read_as_markdown(site: Path) -> None:
    """scripts/docs_roles.py: ``:class:`X``` shows as ``X``, a literal block's ``::`` as ``:``."""
    for page in sorted((site / "reference").glob("*.html")):
        text = page.read_text()
        assert re.findall(r":[a-z]+:<code>|:[a-z]+:`", text) == [], page.name
        assert re.findall(r"\w::</p>", text) == [], page.name
    errors = (site / "reference" / "errors.html").read_text()
    assert "derives from <code>AIPortraitError</code>" in errors


def test_a_role_naming_a_public_name_links_to_its_entry(site: Path) -> None:
    """``:class:`~aiportrait.errors.SubmitOutcomeUnknown``` is a link to its entry; a public
    name the reference lacks would stay plain code, in a ``<span title=...>``: there is none."""
    session = (site / "reference" / "session.html").read_text()
    assert re.search(
        r'<a class="autorefs autorefs-internal"[^>]* href="errors.html'
        r'#aiportrait.errors.SubmitOutcomeUnknown"><code>SubmitOutcomeUnknown</code></a>',
        session,
    )
    for page in sorted((site / "reference").glob("*.html")):
        assert re.findall(r'<span title="aiportrait[\w.]*"><code>', page.read_text()) == []


class _Prose(HTMLParser):
    """A page's text outside code (``<code>``, ``<pre>``)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.depth += tag in {"code", "pre"}

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag in {"code", "pre"}

    def handle_data(self, data: str) -> None:
        if self.depth == 0:
            self.text.append(data)


def test_summaries_are_whole_first_paragraphs(site: Path) -> None:
    """A summary row shows a docstring's first line: scripts/docs_roles.py joins the first
    paragraph into it, so no row stops mid-sentence, inside an unclosed code span."""
    for page in sorted((site / "reference").glob("*.html")):
        parser = _Prose()
        parser.feed(page.read_text())
        assert "`" not in "".join(parser.text), page.name
    models = (site / "reference" / "models.html").read_text()
    summary = re.compile(  # BatchPlan.summary's row: its docstring's first two lines, joined
        r'href="#aiportrait.models.BatchPlan.summary">summary</a></code></td>\s*<td>\s*'
        r'<div class="doc-md-description">\s*<p>The counts by kind and step, for JSON: '
        r'<code>{"create": {"items": 60, "charge": 30, "done": 25, ...}, "train": {...}}</code>, '
        r"every step present.</p>"
    )
    assert summary.search(models)


def test_the_cli_reference_is_the_one_the_commands_write() -> None:
    page = DOCS / "reference" / "cli.md"
    assert page.read_text() == aiportrait.cli.reference(), (
        f"{page.relative_to(ROOT)} differs from the commands' --help: run {REGENERATE}"
    )


def test_the_cli_reference_names_the_help_options_the_commands_take() -> None:
    """``-h, --help``, whether or not a command ran before in the process (click keeps a
    command's help option from the first context that asks for it)."""
    for first in ("", "aiportrait.cli.main(['--help'])", "aiportrait.cli.parse(['uploads', '-h'])"):
        code = f"import aiportrait.cli\n{first}\nprint(aiportrait.cli.reference())"
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "| `-h, --help` |" in run.stdout
        assert "| `--help` |" not in run.stdout


def test_the_cli_reference_has_every_command(site: Path) -> None:
    html = (site / "reference" / "cli.html").read_text()
    for path in ("aiportrait check", "aiportrait temporal worker", "aiportrait uploads delete"):
        assert f'id="{path.replace(" ", "-")}"' in html
    assert "--concurrency" in html
    assert 'id="aiportrait.cli.parse"' in html  # the Python API of the command line


def test_the_search_finds_create_config(site: Path) -> None:
    index = json.loads((site / "search.json").read_text())
    found = [item["location"] for item in index["items"] if "CreateConfig" in item["title"]]
    assert any(location.startswith("reference/config.html") for location in found), found
    # from the disk (file://), the theme reads the same index from search.js
    script = (site / "search.js").read_text()
    assert script.startswith("var __index = ")
    assert json.loads(script.removeprefix("var __index = ").rstrip().rstrip(";")) == index


class _Assets(HTMLParser):
    """The URLs a page loads (scripts, styles, images, frames, media), not those it links to."""

    LOADS: ClassVar = {"script", "img", "iframe", "source", "video", "audio", "embed"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link":  # a stylesheet, icon, preload, preconnect...: all fetched
            self.urls.append(values.get("href") or "")
        elif tag in self.LOADS:
            self.urls.append(values.get("src") or "")
        if tag == "img" and values.get("srcset"):
            self.urls += [part.split()[0] for part in (values["srcset"] or "").split(",")]


def _from_another_host(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.netloc) and parts.hostname not in LOOPBACK


def test_no_page_loads_anything_from_another_host(site: Path) -> None:
    outside: dict[str, list[str]] = {}
    for page in sorted(site.rglob("*.html")):
        parser = _Assets()
        parser.feed(page.read_text())
        urls = [url for url in parser.urls if _from_another_host(url)]
        if urls:
            outside[str(page.relative_to(site))] = sorted(set(urls))
    for sheet in sorted(site.rglob("*.css")):  # @import and url(): fonts, images
        urls = re.findall(
            r"(?:@import\s+|url\()\s*['\"]?((?:https?:)?//[^'\")\s]+)", sheet.read_text()
        )
        if urls := [url for url in urls if _from_another_host(url)]:
            outside[str(sheet.relative_to(site))] = sorted(set(urls))
    assert outside == {}


def test_the_guard_sees_an_asset_from_another_host() -> None:
    parser = _Assets()
    parser.feed(
        '<link rel="stylesheet" href="https://fonts.googleapis.com/css">'
        '<script src="//unpkg.com/x"></script><script src="./local.js"></script>'
        '<img src="http://127.0.0.1:8089/media/a.jpg"><a href="https://zensical.org/">made</a>'
    )
    assert [u for u in parser.urls if _from_another_host(u)] == [
        "https://fonts.googleapis.com/css",
        "//unpkg.com/x",
    ]


def test_every_example_is_described_in_the_examples_readme() -> None:
    examples = ROOT / "examples"
    readme = (examples / "README.md").read_text()
    names = [p.name for p in sorted(examples.glob("*.py")) if not p.name.startswith("_")]
    names += [p.name for p in sorted(examples.glob("*.ipynb"))]
    assert len(names) >= 8
    missing = [name for name in names if not re.search(rf"(?<![\w.]){re.escape(name)}\b", readme)]
    assert missing == [], "examples/README.md does not describe them"


def test_a_browser_finds_create_config_from_the_disk_and_nothing_from_outside(site: Path) -> None:
    """Opened from the disk (file://), as ./scripts/docs says: the search works (the vendored
    iframe-worker shim), and every request the page makes stays on the disk."""
    assert CHROMIUM.exists(), MISSING
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto((site / NAV[0]).with_suffix(".html").as_uri())
            page.click("button.md-search__button")
            page.keyboard.type("CreateConfig")
            page.wait_for_selector(
                "a[href*='reference/config.html?h=CreateConfig']", state="attached"
            )
        finally:
            browser.close()
    assert [url for url in requests if urlsplit(url).scheme not in {"file", "data", "blob"}] == []
    assert any(url.endswith("/search.js") for url in requests)
