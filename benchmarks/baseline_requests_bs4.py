"""The seed's approach: requests + BeautifulSoup (html.parser), one page after another.

Sequential fetching makes 1,000 pages take minutes, so this measures a sample of pages
and reports the time per page; its JSON line says ``"sampled": true``.

Usage: ``python benchmarks/baseline_requests_bs4.py BASE_URL N [CONCURRENCY] [--sample 20]``
(CONCURRENCY is accepted for a uniform command line and ignored: this approach has none).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import requests
from bs4 import BeautifulSoup

SELECTOR = "a.anthrazit"


def count_links(session: requests.Session, url: str) -> int:
    response = session.get(url, timeout=20)
    response.raise_for_status()
    return len(BeautifulSoup(response.text, "html.parser").select(SELECTOR))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="requests + BeautifulSoup, sequential")
    parser.add_argument("base_url")
    parser.add_argument("pages", type=int)
    parser.add_argument("concurrency", type=int, nargs="?", default=1)
    parser.add_argument("--sample", type=int, default=20, help="pages actually fetched")
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")
    sample = min(args.sample, args.pages)
    total = 0
    with requests.Session() as session:
        start = time.perf_counter()
        for i in range(1, sample + 1):
            total += count_links(session, f"{base_url}/page/{i}")
        wall = time.perf_counter() - start
    per_page = wall / sample
    print(
        json.dumps(
            {
                "tool": "requests+bs4",
                "sampled": True,
                "pages": sample,
                "ok": sample,
                "failed": 0,
                "total": total,
                "wall_s": round(wall, 4),
                "per_page_ms": round(per_page * 1000, 2),
                "projected_wall_s_for_n": round(per_page * args.pages, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
