"""Scrapy baseline: the same N pages at the same concurrency, counted with response.css.

Usage: ``python benchmarks/baseline_scrapy.py BASE_URL N CONCURRENCY``;
prints one JSON line with the total count.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response

SELECTOR = "a.anthrazit"


class CountSpider(scrapy.Spider):
    name = "count_anthrazit"

    def __init__(self, base_url: str, pages: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The default start() requests each of these once, with dont_filter set.
        self.start_urls = [f"{base_url}/page/{i}" for i in range(1, pages + 1)]
        self.total = 0
        self.ok = 0

    def parse(self, response: Response, **kwargs: Any) -> None:
        self.total += len(response.css(SELECTOR))
        self.ok += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scrapy baseline")
    parser.add_argument("base_url")
    parser.add_argument("pages", type=int)
    parser.add_argument("concurrency", type=int)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": args.concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency,
            "CONCURRENT_REQUESTS_PER_IP": 0,
            "DOWNLOAD_DELAY": 0,
            "ROBOTSTXT_OBEY": False,
            "AUTOTHROTTLE_ENABLED": False,
            "RETRY_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "REMOTE_CONTROL_ENABLED": False,
            "LOG_LEVEL": "ERROR",
            "LOGSTATS_INTERVAL": 0,
        }
    )
    crawler = process.create_crawler(CountSpider)
    process.crawl(crawler, base_url=args.base_url.rstrip("/"), pages=args.pages)
    process.start()
    wall = time.perf_counter() - start
    spider = crawler.spider
    assert isinstance(spider, CountSpider)
    failed = args.pages - spider.ok
    print(
        json.dumps(
            {
                "tool": "scrapy",
                "pages": args.pages,
                "ok": spider.ok,
                "failed": failed,
                "total": spider.total,
                "wall_s": round(wall, 4),
            }
        )
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
