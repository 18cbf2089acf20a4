"""What the README, the docs and `config init` show a new user must be accepted by the tool as
written: every ```toml block of README.md and docs/*.md, and the template, loads as TOML and
validates as a config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from k3s_backup.commands.config_cmd import TEMPLATE
from k3s_backup.config import load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOML_BLOCK = re.compile(r"^```toml\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def toml_blocks() -> list[tuple[str, str]]:
    """(`page:line`, block) for every TOML block of the README and the docs."""
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        where = page.relative_to(ROOT)
        for m in TOML_BLOCK.finditer(text):
            blocks.append((f"{where}:{text.count(chr(10), 0, m.start()) + 1}", m.group(1)))
    return blocks


def test_the_readme_has_its_configuration_examples():
    blocks = toml_blocks()
    assert len(blocks) >= 4
    assert any("[[targets]]" in body and "metrics_textfile" in body for _, body in blocks)


@pytest.mark.parametrize(
    "where, body", [pytest.param(where, body, id=where) for where, body in toml_blocks()]
)
def test_every_readme_toml_block_is_a_valid_configuration(where, body):
    parse_config(tomllib.loads(body), Path(where))  # ConfigError names the key if not


def test_the_main_example_keeps_its_top_level_keys_top_level():
    [main] = [body for _, body in toml_blocks() if "cluster_name" in body]
    config = parse_config(tomllib.loads(main), Path("docs/configuration.md"))
    assert config.metrics_textfile is not None  # not swallowed by a [[targets]] table
    assert [t.name for t in config.targets] == ["proxmox", "usb"]


def test_config_init_template_is_a_valid_configuration(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(TEMPLATE)
    config = load_config(path)
    assert [t.name for t in config.targets] == ["proxmox"]


LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_is_short_and_links_every_docs_page():
    """Issue 16: the README is what it does, install, setup, status, restore and links; the
    rest lives in docs/, each page reachable from it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    linked = {target.split("#")[0] for target in LINK.findall(readme)}
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in linked, f"README does not link docs/{page.name}"
    assert "not\nfor a K3s node" in readme or "not for a K3s node" in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_anchor_resolves(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}: no such file"
        if anchor and linked.suffix == ".md":
            headings = HEADING.findall(linked.read_text(encoding="utf-8"))
            anchors = {_anchor(h) for h in headings}
            assert anchor in anchors, f"{page.name}: {target}: no such heading"
