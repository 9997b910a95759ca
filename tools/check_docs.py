#!/usr/bin/env python3
"""Checks the links of the guide and the README; builds nothing.

Run after `mdbook build docs` (scripts/test does both). mdBook turns the pages of docs/
into HTML in target/book but does not fail on a broken link, so this does:

- in every HTML file of the built book, every relative `href` and `src`: the file must
  exist, and a `#anchor` must be an `id` in it;
- in README.md, every relative Markdown link and image: the file must exist, and a
  `#anchor` must be one GitHub makes from a heading of the Markdown file it points at.

Prints one line per broken link and exits 1 when there is one. Standard library only.

    tools/check_docs.py [--book target/book] [--readme README.md]
"""

import argparse
import html.parser
import os
import re
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shown(path):
    """A path for messages: relative to the repository where it is inside it."""
    path = Path(os.path.normpath(path))
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def is_external(url):
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url)) or url.startswith("//")


class Html(html.parser.HTMLParser):
    """The links and the ids of one HTML file."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links = []  # (line, url)
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name") and (name == "id" or tag == "a"):
                self.ids.add(value)
            if name in ("href", "src") and tag not in ("base",):
                self.links.append((self.getpos()[0], value))

    handle_startendtag = handle_starttag


def parse_html(path, cache):
    if path not in cache:
        parser = Html()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = parser
    return cache[path]


def check_book(book):
    """Broken links of the built book, one message each."""
    errors = []
    cache = {}
    pages = sorted(book.rglob("*.html"))
    if not pages:
        return [f"{book}: no HTML files: build the guide first (mdbook build docs)"]
    for page in pages:
        # The source of a page, for messages: docs/<name>.md where there is one.
        rel = page.relative_to(book)
        source = ROOT / "docs" / rel.with_suffix(".md")
        where = f"{source.relative_to(ROOT)}, built {rel}" if source.exists() else shown(page)
        for line, url in parse_html(page, cache).links:
            if is_external(url) or url.startswith("javascript:"):
                continue
            parts = urllib.parse.urlsplit(url)
            target_path = urllib.parse.unquote(parts.path)
            target = page if not target_path else (page.parent / target_path)
            fragment = urllib.parse.unquote(parts.fragment)
            if not target.exists():
                errors.append(f"{where}, line {line}: {url}: no file {shown(target)}")
                continue
            if target.is_dir():
                target = target / "index.html"
                if not target.exists():
                    errors.append(f"{where}, line {line}: {url}: a folder without index.html")
                    continue
            if fragment and target.suffix == ".html":
                if fragment not in parse_html(target, cache).ids:
                    errors.append(
                        f"{where}, line {line}: {url}: no id \"{fragment}\" in {shown(target)}"
                    )
    return errors


def github_slug(heading):
    """The anchor GitHub gives a Markdown heading (without the -N of repeats)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def markdown_lines(path):
    """(line number, text) of a Markdown file outside fenced code blocks."""
    fence = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.lstrip()
        match = re.match(r"(```+|~~~+)", stripped)
        if match:
            if fence is None:
                fence = match.group(1)
            elif stripped.startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, line


def github_anchors(path):
    anchors = set()
    seen = {}
    for _, line in markdown_lines(path):
        match = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    # Explicit anchors: <a id="…"> / <a name="…">.
    for _, line in markdown_lines(path):
        anchors.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return anchors


INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")


def check_markdown(path):
    """Broken relative links of one Markdown file, as GitHub resolves them."""
    errors = []
    anchor_cache = {}
    where = shown(path)
    for number, line in markdown_lines(path):
        line = re.sub(r"`[^`]*`", "", line)  # code spans hold no links
        for url in INLINE_LINK.findall(line):
            if not url or is_external(url):
                continue
            parts = urllib.parse.urlsplit(url)
            target_path = urllib.parse.unquote(parts.path)
            target = path if not target_path else (path.parent / target_path)
            if not target.exists():
                errors.append(f"{where}:{number}: {url}: no file {shown(target)}")
                continue
            fragment = urllib.parse.unquote(parts.fragment)
            if fragment and target.suffix == ".md":
                if target not in anchor_cache:
                    anchor_cache[target] = github_anchors(target)
                if fragment not in anchor_cache[target]:
                    errors.append(
                        f"{where}:{number}: {url}: no heading with anchor #{fragment} in "
                        f"{shown(target)}"
                    )
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--book", type=Path, default=ROOT / "target" / "book")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    errors = check_book(args.book.resolve()) + check_markdown(args.readme.resolve())
    for error in errors:
        print(error)
    if errors:
        print(f"check_docs: {len(errors)} broken link(s)", file=sys.stderr)
        return 1
    print("check_docs: every link of the guide and the README resolves", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
