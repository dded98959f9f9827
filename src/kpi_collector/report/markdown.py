"""The digest as a Markdown document: what `kpi report --out FILE.md` writes."""

from __future__ import annotations

from kpi_collector.destinations.digest import NO_VALUES, Digest, DigestLine
from kpi_collector.destinations.text import grouped_lines, isolate

#: the ASCII punctuation that can start markup inside a line (HTML, links, emphasis, code,
#: strikethrough, entities) or end a heading (a closing run of `#`: `## Channel #` reads
#: "Channel"); CommonMark shows a backslash-escaped one as itself
_MARKUP = str.maketrans({c: "\\" + c for c in "\\*_[]<>&~#"})


def markdown_text(text: str) -> str:
    """User data (a title, a group, a unit, a note, an error) as Markdown text that reads as
    typed, on one line: no HTML, link, emphasis, code, heading or mention can come of it
    (`@` gets a zero-width space, a backtick becomes `'`, as in `escape_markdown`)."""
    one_line = " ".join(text.split())  # a line break would start a heading or a list item
    return one_line.replace("@", "@\u200b").replace("`", "'").translate(_MARKUP)


def _line(line: DigestLine) -> str:
    """ "- **GitHub Stargazers**: 1,647 ⬆ 1.67%", title and value (its unit) escaped."""
    title, value = isolate(markdown_text(line.title)), isolate(markdown_text(line.formatted))
    text = f"- **{title}**: {value}"
    return f"{text} {line.change_text}" if line.change_text else text


def digest_markdown(digest: Digest) -> str:
    """A heading, a bullet per KPI (`- **GitHub Stargazers**: 1,647 ⬆ 1.67%`) under a `## Group`
    heading per group (when there are groups), the failing
    sources in full (escaped: user data never becomes markup or a mention), the comparison
    in italics; ends with a newline."""
    parts = [f"# {markdown_text(digest.title)}", ""]
    parts += grouped_lines(
        digest,
        _line,
        lambda group: ["", f"## {markdown_text(group)}", ""],
    ) or [NO_VALUES]
    if digest.grouped and parts[2] == "":  # the first heading follows the title's blank line
        del parts[2]
    if digest.notes:
        parts += ["", "## Notes", ""]
        parts += [
            f"- {day.isoformat()}: {isolate(markdown_text(text))}" for day, text in digest.notes
        ]
    if digest.errors:
        parts += ["", "## Failing sources", ""]
        parts += [f"- {markdown_text(error.text(limit=None))}" for error in digest.errors]
    if digest.comparison:
        parts += ["", f"_{digest.comparison}_"]
    return "\n".join(parts) + "\n"
