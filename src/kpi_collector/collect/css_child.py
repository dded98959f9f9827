"""A CSS selector matched by Lexbor in a process of its own, for `HtmlDocument.css` when the
page could make the selector backtrack for hours (the parent kills this process at its
limit). Reads one JSON line ({"selector", "count", "attr"}) and then the page as UTF-8 on
stdin; writes {"count": n, "hidden": of them not shown} or {"found", "text", "attr", "lang", "counter", "busy"} (and, for a
first match not shown, "shown": the same of the first one shown, or null) as JSON on stdout.
"""

from __future__ import annotations

import json
import sys


def _die_with_parent() -> None:
    """On Linux, be killed when the process that started this one dies (prctl(2)
    PR_SET_PDEATHSIG), so a run that ends or crashes leaves no matcher running."""
    import os
    import signal

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the call: nobody waits for this
        sys.exit(1)


def main() -> None:
    _die_with_parent()
    from selectolax.lexbor import LexborHTMLParser

    from kpi_collector.collect.layout import count_unshown, unshown

    data = sys.stdin.buffer.read()
    header, _, page = data.partition(b"\n")
    request = json.loads(header)
    tree = LexborHTMLParser(page)
    selector = request["selector"]
    if request["count"]:
        nodes = tree.css(selector)
        hidden = count_unshown(nodes)
        answer: dict[str, object] = {"count": len(nodes), "hidden": hidden}
    else:
        node = tree.css_first(selector)
        answer = {"found": node is not None, "text": None, "attr": None, "lang": None}
        if node is not None:
            answer.update(_shown(node))
            if request["attr"] is not None:
                answer["attr"] = node.attributes.get(request["attr"])
            elif unshown(node):
                # a first match the page does not show: the first one it shows, if any, to
                # compare with (`HtmlDocument._first_shown`)
                later = next((other for other in tree.css(selector) if not unshown(other)), None)
                answer["shown"] = None if later is None else _shown(later)
    sys.stdout.write(json.dumps(answer))


def _shown(node: object) -> dict[str, object]:
    """What `HtmlDocument` reads of a match: its text as laid out, a placeholder's signs
    (`finish_shown`) and its language."""
    from kpi_collector.collect.layout import busy, counter_target, layout_text, nearest_lang

    return {
        "text": layout_text(node),
        "counter": counter_target(node),
        "busy": busy(node),
        "lang": nearest_lang(node),
    }


if __name__ == "__main__":
    main()
