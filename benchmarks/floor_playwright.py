"""The floor for `render: true`: a plain Playwright loop over single-page-app pages.

One Chromium (the same binary and flags as kpi-collector), at most N pages at once, each in
its own context: open, wait for the selector, read its text, close. Prints one JSON line:
``{"launch_s": ..., "pages_s": ..., "values": [...]}``.

Usage: ``python benchmarks/floor_playwright.py --concurrency 4 --selector "#downloads" URL...``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

CHROMIUM = os.environ.get("KPI_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]


async def main(urls: list[str], concurrency: int, selector: str) -> dict[str, object]:
    from playwright.async_api import async_playwright

    began = time.perf_counter()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        launched = time.perf_counter()
        slots = asyncio.Semaphore(concurrency)

        async def one(url: str) -> str:
            async with slots:
                context = await browser.new_context()
                try:
                    page = await context.new_page()
                    await page.goto(url, wait_until="domcontentloaded")
                    element = await page.wait_for_selector(selector, state="attached")
                    assert element is not None
                    return await element.inner_text()
                finally:
                    await context.close()

        values = await asyncio.gather(*(one(u) for u in urls))
        done = time.perf_counter()
        await browser.close()
    return {"launch_s": launched - began, "pages_s": done - launched, "values": values}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--selector", default="#downloads")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.urls, args.concurrency, args.selector))))
    sys.exit(0)
