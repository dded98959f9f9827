"""The floor: the least a Python client can do to fetch N pages and count links.

Plain aiohttp with one session and a connection limit, selectolax (Lexbor) for the
CSS count, nothing else. ``kpi run`` is measured against this.

Usage: ``python benchmarks/floor_aiohttp_selectolax.py BASE_URL N CONCURRENCY``;
prints one JSON line with the total count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp
from selectolax.lexbor import LexborHTMLParser

SELECTOR = "a.anthrazit"


async def count_links(
    session: aiohttp.ClientSession, semaphore: asyncio.Semaphore, url: str
) -> int:
    async with semaphore, session.get(url) as response:
        response.raise_for_status()
        body = await response.read()
    return len(LexborHTMLParser(body).css(SELECTOR))


async def crawl(base_url: str, pages: int, concurrency: int) -> tuple[int, int, int]:
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        results = await asyncio.gather(
            *(count_links(session, semaphore, f"{base_url}/page/{i}") for i in range(1, pages + 1)),
            return_exceptions=True,
        )
    counts = [r for r in results if isinstance(r, int)]
    return sum(counts), len(counts), len(results) - len(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="aiohttp + selectolax floor")
    parser.add_argument("base_url")
    parser.add_argument("pages", type=int)
    parser.add_argument("concurrency", type=int)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    total, ok, failed = asyncio.run(crawl(args.base_url.rstrip("/"), args.pages, args.concurrency))
    wall = time.perf_counter() - start
    print(
        json.dumps(
            {
                "tool": "aiohttp+selectolax",
                "pages": args.pages,
                "ok": ok,
                "failed": failed,
                "total": total,
                "wall_s": round(wall, 4),
            }
        )
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
