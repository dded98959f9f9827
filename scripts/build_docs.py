"""Build the connector parts of the docs from each connector's own README.md.

A connector is one folder (`src/kpi_collector/sources/github/`,
`src/kpi_collector/destinations/notion/`); its README.md is the only copy of its
documentation. It may start with a small YAML front matter:

    ---
    page: docs/connectors.md      # where its section goes (this is the default)
    metrics: "**stars, forks**"   # the overview table's columns (pages that have the table)
    credentials: "optional `token`"
    backfill: "stars"
    ---

The pages keep their own text; this script only rewrites what stands between its markers:
`<!-- built: sections ... -->` ... `<!-- end built -->` (the sections, in the order of the entry
points in pyproject.toml) and `<!-- built: table ... -->` ... `<!-- end built -->` (one overview
row per connector that has `metrics`). tests/test_docs.py fails when a page differs from
what this builds, so a README and the docs never drift.

    python scripts/build_docs.py            # rewrite the pages (`make docs`)
    python scripts/build_docs.py --check    # exit 1 when a page is out of date
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
#: entry-point group -> the page a connector's section goes to when its README names none
GROUPS = {
    "kpi_collector.sources": "docs/connectors.md",
    "kpi_collector.destinations": "docs/destinations.md",
}
TABLE_HEAD = (
    "| type | metrics (defaults in **bold**) | credentials | backfill |\n|---|---|---|---|\n"
)
_REGION = re.compile(r"(<!-- built: (\w+)\b[^\n]*-->\n)(.*?)(<!-- end built -->)", re.S)
_FRONT = re.compile(r"\A---\n(.*?)\n---\n\n?", re.S)


def connectors(group: str) -> list[tuple[str, Path]]:
    """(type name, folder) of each built-in of `group`, in pyproject.toml's order; a folder
    that holds several types (`destinations/files/`: csv, jsonl, parquet) once, under its
    first. An entry point naming a plain module (`destinations/store.py`, the history store)
    is no connector: the page documents it in its own text.

    Raises SystemExit when a connector folder has no README.md.
    """
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found: list[tuple[str, Path]] = []
    for name, target in pyproject["project"]["entry-points"][group].items():
        module = target.partition(":")[0]
        folder = SRC.joinpath(*module.split("."))
        if folder.with_suffix(".py").is_file() or any(folder == f for _, f in found):
            continue
        if not (folder / "README.md").is_file():
            raise SystemExit(f"{name}: {folder.relative_to(ROOT)}/README.md is missing")
        found.append((name, folder))
    return found


def read_readme(folder: Path) -> tuple[dict[str, str], str]:
    """(front matter, body) of a connector's README.md."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    match = _FRONT.match(text)
    if match is None:
        return {}, text.strip() + "\n"
    meta = yaml.safe_load(match.group(1)) or {}
    return {str(k): str(v) for k, v in meta.items()}, text[match.end() :].strip() + "\n"


def build() -> dict[Path, str]:
    """Every page that holds built regions -> its text as it should be."""
    sections: dict[str, list[str]] = {}
    rows: dict[str, list[str]] = {}
    for group, default_page in GROUPS.items():
        for name, folder in connectors(group):
            meta, body = read_readme(folder)
            page = meta.get("page", default_page)
            sections.setdefault(page, []).append(body)
            if "metrics" in meta:
                anchor = re.sub(r"[^a-z0-9_-]", "", name.lower())
                cells = [
                    meta["metrics"],
                    meta.get("credentials", "none"),
                    meta.get("backfill", "–"),
                ]
                rows.setdefault(page, []).append(
                    f"| [`{name}`](#{anchor}) | {' | '.join(cells)} |\n"
                )
    built = {"sections": sections, "table": rows}
    pages = {}
    for page in sorted({*sections, *rows}):
        path = ROOT / page
        text = path.read_text(encoding="utf-8")

        def fill(match: re.Match[str], page: str = page) -> str:
            kind = match.group(2)
            if kind not in built:
                raise SystemExit(f"{page}: unknown region <!-- built: {kind} -->")
            parts = built[kind].get(page, [])
            content = TABLE_HEAD + "".join(parts) if kind == "table" else "\n".join(parts)
            return f"{match.group(1)}\n{content}\n{match.group(4)}"

        new, count = _REGION.subn(fill, text)
        if count == 0:
            raise SystemExit(f"{page}: no <!-- built: ... --> region for its connectors")
        pages[path] = new
    return pages


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in build().items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(str(path.relative_to(ROOT)))
            if not check:
                path.write_text(text, encoding="utf-8")
    if stale:
        verb = "out of date (run `make docs`)" if check else "rebuilt"
        print(f"{verb}: {', '.join(stale)}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
