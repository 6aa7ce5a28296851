"""Every shell example in README.md and docs/*.md runs exactly as written and prints what the
page shows (see ``docs_support`` for the ```console convention and the markers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_support import ROOT, Workspace, blocks, matches, pages

# Pages are parsed inside the test, so that a malformed block fails its page, not the collection.
PAGES = [page for page in pages() if "```console" in page.read_text(encoding="utf-8")]
CI_STEPS = (ROOT / ".ci/run").read_text().splitlines()


def test_the_readme_and_the_main_pages_have_examples():
    names = {str(page.relative_to(ROOT)) for page in PAGES}
    assert {"README.md", "docs/sql.md", "docs/migration.md"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_command_prints_what_the_page_shows(page, tmp_path, request):
    run = [b for b in blocks(page) if b.mark in ("", "fresh", "legacy", "postgres")]
    if any(e.command.startswith("npx ") for b in run for e in b.examples):
        request.getfixturevalue("npx")  # MCP Inspector needs node: CI has it, elsewhere the page is skipped
    workspace = None
    for n, block in enumerate(blocks(page)):
        if block.mark == "ci":
            for example in block.examples:
                assert example.command in CI_STEPS, f"{block.id}: .ci/run does not run {example.command!r}"
            continue
        if block.mark.startswith("not run:"):
            assert block.mark[len("not run:") :].strip(), f"{block.id}: say why the block is not run"
            continue
        assert block.mark in ("", "fresh", "legacy", "postgres"), f"{block.id}: unknown marker {block.mark!r}"
        if workspace is None or block.mark:
            extra = {"DB": request.getfixturevalue("pg_url")} if block.mark == "postgres" else None
            workspace = Workspace(tmp_path / f"block{n}", block.mark or "demo", extra)
        for example in block.examples:
            done = workspace.run(example.command)
            printed = [line.rstrip() for line in done.stdout.rstrip("\n").split("\n")] if done.stdout else []
            assert matches(example.expected, printed), (
                f"{block.id}: $ {example.command}\n--- the page shows:\n"
                + "\n".join(example.expected)
                + "\n--- it printed:\n"
                + "\n".join(printed)
            )


@pytest.mark.parametrize(
    ("expected", "printed", "ok"),
    [
        (["a", "…", "d"], ["a", "b", "c", "d"], True),
        (["a", "...", "d"], ["a", "d"], True),
        (["_1 row in … ms_"], ["_1 row in 3.1 ms_"], True),
        (["a"], ["a", "b"], False),
        (["a", "…"], ["b"], False),
        (["x…y"], ["x-z"], False),
    ],
)
def test_elision(expected, printed, ok):
    assert matches(expected, printed) is ok


# Pages other branches add (issues 9, 10, 11, 12 and 15); once merged they are checked like the rest.
ARRIVING = {"agent-tools.md", "trust.md", "sandbox.md", "sharing.md", "recovery.md"}
LINK = re.compile(r"\]\((?!https?://|mailto:)([^)#\s]*)(?:#([^)\s]+))?\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    headings = re.findall(r"(?m)^#+ (.+)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", pages(), ids=[str(p.relative_to(ROOT)) for p in pages()])
def test_every_relative_link_and_anchor_exists(page):
    for target, anchor in LINK.findall(page.read_text()):
        path = (page.parent / target).resolve() if target else page
        if not path.exists() and path.name in ARRIVING and path.parent == ROOT / "docs":
            continue
        assert path.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{page.name} links to {target}#{anchor}: no such heading"


def test_the_readme_shows_no_image_a_package_index_cannot_show():
    # PyPI renders only the README, without the repository's files: no relative image paths.
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"!\[[^\]]*\]\((?!https://)", readme) == []
    assert "<img" not in readme
