"""Extraction benchmark: counting ``a.anthrazit`` on one ~80 KB page.

kpi-collector's own html extractor (the path an `html` source takes: parse, evaluate the
metric, apply the count rules) against BeautifulSoup with ``html.parser`` (the seed's
choice) and, for information, BeautifulSoup with lxml and bare selectolax.

Usage: ``python benchmarks/bench_extract.py [--page 1] [--repeat 7]``
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable

from benchlib import Check, Report, median, print_report
from bs4 import BeautifulSoup
from htmlserver import expected_links, render_page
from selectolax.lexbor import LexborHTMLParser

SELECTOR = "a.anthrazit"
#: what pages write; each reads as one number under the default locale (en)
TEXTS = ("12,374", "Over 2.4 million downloads", "59.5%", "$1,200", "1.2k", "(1,200)", "7")
SPEEDUP_VS_BS4 = 20.0  # kpi extractor vs BeautifulSoup(html.parser), at least


def per_call_seconds(candidates: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds per call of each candidate.

    Each repeat times every candidate once, in turn, so a burst of other work on the
    machine hits all of them alike instead of skewing one.
    """
    timers = {name: timeit.Timer(func) for name, func in candidates.items()}
    numbers = {name: timer.autorange()[0] for name, timer in timers.items()}  # >= 0.2 s each
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, timer in timers.items():
            samples[name].append(timer.timeit(numbers[name]) / numbers[name])
    return {name: median(values) for name, values in samples.items()}


def run_benchmark(page: int, repeat: int) -> Report:
    # Imported here so run_all still runs the other benchmarks if the package is broken.
    from kpi_collector.collect.extract import CSS, HtmlDocument
    from kpi_collector.collect.numbers import parse_number

    body = render_page(page)
    text = body.decode()  # what requests' `.text` hands BeautifulSoup
    metric = CSS(SELECTOR, count=True)
    candidates: dict[str, Callable[[], float]] = {
        # The same call sources/html.py makes on a fetched body.
        "kpi-collector extractor": lambda: HtmlDocument(body).metric("posts", metric),
        "selectolax (Lexbor), bare": lambda: len(LexborHTMLParser(body).css(SELECTOR)),
        "BeautifulSoup html.parser": lambda: len(
            BeautifulSoup(text, "html.parser").select(SELECTOR)
        ),
        "BeautifulSoup lxml": lambda: len(BeautifulSoup(text, "lxml").select(SELECTOR)),
    }
    expected = expected_links(page)
    wrong = {name: f() for name, f in candidates.items() if f() != expected}
    if wrong:
        raise RuntimeError(f"expected {expected} links on page {page}, got {wrong}")
    seconds = per_call_seconds(dict(candidates), repeat)
    texts = per_call_seconds({"parse": lambda: [parse_number(t) for t in TEXTS]}, repeat)
    per_text = texts["parse"] / len(TEXTS)
    kpi = seconds["kpi-collector extractor"]
    speedup = seconds["BeautifulSoup html.parser"] / kpi
    checks = [
        Check(f"{name} (one {len(body) // 1000} KB page)", f"{s * 1000:.2f} ms", "", None)
        for name, s in seconds.items()
    ]
    checks.append(
        Check(
            "BeautifulSoup html.parser / kpi extractor",
            f"{speedup:.0f}x",
            f">= {SPEEDUP_VS_BS4:.0f}x",
            speedup >= SPEEDUP_VS_BS4,
        )
    )
    checks.append(
        Check(
            "BeautifulSoup lxml / kpi extractor",
            f"{seconds['BeautifulSoup lxml'] / kpi:.0f}x",
            "",
            None,
        )
    )
    checks.append(
        Check(f"text → number (mean of {len(TEXTS)} texts)", f"{per_text * 1e6:.1f} µs", "", None)
    )
    notes = [f"all four counted {expected} links; timeit, median of {repeat} interleaved repeats"]
    command = f"python benchmarks/bench_extract.py --page {page} --repeat {repeat}"
    return Report("Extraction: count a.anthrazit on one page", command, checks, notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=int, default=1, help="which generated page")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    report = run_benchmark(args.page, args.repeat)
    print_report(report)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
