"""Screenshots of the dashboard for the README (docs/img/*.png), in headless Chromium.

    .venv/bin/python scripts/screenshots.py [--config kpi.yaml] [--out docs/img]

Without --config it builds the `kpi demo` folder (local demo services, 90 days of history)
in a temporary directory. Needs /usr/bin/chromium (Debian package `chromium`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = [  # (file, path, viewport, full page)
    ("overview.png", "/", {"width": 1280, "height": 860}, False),
    (
        "kpi.png",
        "/kpi/podcast.downloads?period=day&range=90d",
        {"width": 1280, "height": 900},
        False,
    ),
    ("runs.png", "/runs", {"width": 1280, "height": 600}, False),
    ("overview-phone.png", "/", {"width": 390, "height": 844}, False),
]


def demo_config(folder: Path) -> Path:
    from datetime import UTC, datetime

    from kpi_collector.demo.server import BackgroundServer, make_app
    from kpi_collector.demo.setup import seed, write_demo_folder
    from kpi_collector.pipeline import Pipeline

    with BackgroundServer(make_app()) as url:
        config = write_demo_folder(folder, url)
        pipeline = Pipeline.from_config(config)
        assert pipeline.store is not None
        seed(pipeline.store, pipeline.tz, datetime.now(UTC).date())
        pipeline.process(deliver=False)
    return config


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "img"
    )
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    from kpi_collector.config import load_config
    from kpi_collector.report.web import ServerThread, create_app

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        config_path = args.config or demo_config(Path(tmp) / "demo")
        app = create_app(load_config(config_path))
        with ServerThread(app) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for name, path, viewport, full in SHOTS:
                page = browser.new_page(viewport=viewport, device_scale_factor=1)
                page.goto(url + path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(args.out / name), full_page=full)
                page.close()
                print(f"wrote {args.out / name}")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
