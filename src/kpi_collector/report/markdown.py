"""The digest as a Markdown document: what `kpi report --out FILE.md` writes."""

from __future__ import annotations

from kpi_collector.destinations.digest import NO_VALUES, Digest
from kpi_collector.destinations.text import escape_markdown, grouped_lines, kpi_line


def digest_markdown(digest: Digest) -> str:
    """A heading, a bullet per KPI (`- **GitHub Stargazers**: 1,647 ⬆ 1.67%`) under a `## Group`
    heading per group (when there are groups), the failing
    sources in full (escaped: user data never becomes markup or a mention), the comparison
    in italics; ends with a newline."""
    parts = [f"# {digest.title}", ""]
    parts += grouped_lines(
        digest,
        lambda line: f"- {kpi_line(line, '**')}",
        lambda group: ["", f"## {escape_markdown(group)}", ""],
    ) or [NO_VALUES]
    if digest.grouped and parts[2] == "":  # the first heading follows the title's blank line
        del parts[2]
    if digest.notes:
        parts += ["", "## Notes", ""]
        parts += [f"- {day.isoformat()}: {escape_markdown(text)}" for day, text in digest.notes]
    if digest.errors:
        parts += ["", "## Failing sources", ""]
        parts += [f"- {escape_markdown(error.text(limit=None))}" for error in digest.errors]
    if digest.comparison:
        parts += ["", f"_{digest.comparison}_"]
    return "\n".join(parts) + "\n"
