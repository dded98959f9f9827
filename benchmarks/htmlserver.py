"""A local blog-like HTML server for the fan-in benchmarks.

Serves N pre-generated pages of about 80 KB at ``/page/{i}`` (1-based), each answered
after a fixed delay, so that a client's throughput is bound by latency and its own CPU,
never by the server. Every page holds ``expected_links(i)`` links matching
``a.anthrazit`` plus near-miss decoys, so a client's count can be checked exactly.

Run as ``python benchmarks/htmlserver.py --pages 1000``; it prints one JSON line
``{"port": ..., "pages": ..., "expected_total": ...}`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

from aiohttp import web
from benchlib import serve_app

PAGE_BYTES = 80_000
DELAY_S = 0.1

_VOCABULARY = (
    "pipeline metrics growth release community open source deploy cloud model data stack "
    "orchestration vendor agnostic workflow reproducible experiment tracking artifact "
    "registry kubernetes python developer platform feature engineering production "
    "monitoring drift serving inference batch streaming lakehouse"
)
_WORDS = tuple(_VOCABULARY.split())

_STYLE = """
:root{--anthrazit:#2b2f33;--accent:#7a3ff2;--muted:#6b7280}
*{box-sizing:border-box}body{margin:0;font:16px/1.6 Inter,system-ui,sans-serif;color:#111}
header.site{display:flex;justify-content:space-between;padding:1rem 2rem;background:#fff}
nav.main a{margin:0 .75rem;color:var(--anthrazit);text-decoration:none}
.post-list{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:2rem}
article.post{border:1px solid #e5e7eb;border-radius:12px;padding:1.25rem}
a.anthrazit{color:var(--anthrazit);font-weight:600}a.anthrazit:hover{color:var(--accent)}
.tags a{font-size:.8rem;color:var(--muted);margin-right:.5rem}
footer.site{padding:3rem 2rem;background:var(--anthrazit);color:#eee}
@media (max-width:640px){.post-list{grid-template-columns:1fr}}
"""


def expected_links(i: int) -> int:
    """How many ``a.anthrazit`` links page ``i`` holds: 20..50, fixed per page."""
    return 20 + (i * 37 + 11) % 31


def expected_total(pages: int) -> int:
    return sum(expected_links(i) for i in range(1, pages + 1))


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _article(rng: random.Random, i: int, n: int) -> str:
    slug = f"post-{i}-{n}"
    tags = "".join(f'<a href="/tag/{t}" rel="tag">#{t}</a>' for t in rng.sample(_WORDS, 3))
    excerpt = "".join(f"<p>{_sentence(rng, rng.randint(25, 45))}</p>" for _ in range(2))
    return (
        f'<article class="post" id="{slug}" data-post="{n}">'
        f'<img src="/img/{slug}.webp" alt="" loading="lazy" width="640" height="360">'
        f'<span class="date"><time datetime="2024-05-{1 + n % 28:02d}">'
        f"May {1 + n % 28}, 2024</time></span>"
        f'<h2><a class="anthrazit" href="/blog/{slug}">{_sentence(rng, 7)}</a></h2>'
        f'<div class="excerpt">{excerpt}</div>'
        f'<div class="tags">{tags}</div>'
        # Near misses: a.anthrazit must not match these.
        f'<a class="anthrazit-muted" href="/blog/{slug}#comments">Comments</a>'
        f'<span class="anthrazit">Read time {rng.randint(3, 14)} min</span>'
        "</article>\n"
    )


def render_page(i: int) -> bytes:
    """Render page ``i`` deterministically, padded to about ``PAGE_BYTES``."""
    rng = random.Random(i)
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Blog, page {i}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="description" content="{_sentence(rng, 20)}">'
        f'<link rel="canonical" href="/page/{i}"><link rel="stylesheet" href="/site.css">'
        f"<style>{_STYLE}</style>"
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
        "gtag('js',new Date());gtag('config','G-BENCH');</script>"
        "</head>\n<body>"
    )
    nav = (
        '<header class="site"><a class="logo" href="/">Blog</a><nav class="main">'
        + "".join(f'<a href="/{w}">{w.title()}</a>' for w in _WORDS[:12])
        + "</nav></header>\n"
    )
    articles = "".join(_article(rng, i, n) for n in range(expected_links(i)))
    footer_links = "".join(f'<li><a href="/docs/{w}">{w}</a></li>' for w in _WORDS)
    footer = (
        f'<footer class="site"><ul class="links">{footer_links}</ul>'
        '<p>© 2024 Bench Inc. <a href="/privacy">Privacy</a></p></footer>\n'
    )
    body = f'{head}{nav}<main><section class="post-list">{articles}</section>'
    tail = f"</main>{footer}</body></html>\n"
    # Pad with an inline JSON blob, as real sites ship hydration state.
    room = PAGE_BYTES - len(body.encode()) - len(tail.encode()) - 80
    state: list[str] = []
    size = 0
    while size < room:
        chunk = json.dumps({"id": len(state), "text": _sentence(rng, 12)})
        state.append(chunk)
        size += len(chunk) + 1
    script = f'<script id="__STATE__" type="application/json">[{",".join(state)}]</script>'
    return (body + script + tail).encode()


def build_app(pages: int, delay: float) -> web.Application:
    bodies = [render_page(i) for i in range(1, pages + 1)]
    # when the first page request arrived and the last page answer was handed over
    # (time.time()), since the last GET /timeline; the fan-in benchmark reads it per run
    timeline: dict[str, float | int | None] = {"first": None, "last": None, "requests": 0}

    async def page(request: web.Request) -> web.Response:
        try:
            i = int(request.match_info["i"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if not 1 <= i <= pages:
            raise web.HTTPNotFound()
        if timeline["first"] is None:
            timeline["first"] = time.time()
        await asyncio.sleep(delay)
        response = web.Response(body=bodies[i - 1], content_type="text/html", charset="utf-8")
        await response.prepare(request)
        await response.write_eof()
        timeline["last"] = time.time()
        timeline["requests"] = int(timeline["requests"] or 0) + 1
        return response

    async def read_timeline(request: web.Request) -> web.Response:
        answer = dict(timeline)
        timeline.update(first=None, last=None, requests=0)
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/page/{i}", page)
    app.router.add_get("/timeline", read_timeline)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=DELAY_S, help="seconds per response")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    app = build_app(args.pages, args.delay)
    # A deep accept backlog so 64+ clients connecting at once are never refused.
    info = {"pages": args.pages, "expected_total": expected_total(args.pages)}
    asyncio.run(serve_app(app, port=args.port, backlog=1024, **info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
