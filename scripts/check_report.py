#!/usr/bin/env python3
"""Check a BrainVis report page in a real headless Chromium.

Usage: python scripts/check_report.py REPORT_DIR_OR_HTML [...] [--chromium PATH] [--json]

Opens each ``report.html`` (a folder written by ``brainvis demo`` or the page itself) as
``report.html#check``; the page's own script lists every ``<img>`` with its decoded size and
every load error. Exit status 0 when every page loads without errors, every image is present
and decoded, and nothing outside the file is referenced; 1 otherwise; 2 when Chromium is
missing (on Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="report folders or report.html files")
    parser.add_argument("--chromium", default=None, help="Chromium executable (default: found on PATH)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per page")
    parser.add_argument("--json", action="store_true", help="print the full verdicts as JSON")
    args = parser.parse_args(argv)

    from brainvis_hf.apps.demo_report import check_report_in_browser

    status = 0
    verdicts = {}
    for report in args.reports:
        try:
            verdict = check_report_in_browser(report, chromium=args.chromium, timeout=args.timeout)
        except FileNotFoundError as err:
            print(f"{report}: {err}", file=sys.stderr)
            return 2
        except RuntimeError as err:
            print(f"{report}: FAILED: {err}", file=sys.stderr)
            status = 1
            continue
        verdicts[report] = verdict
        bad = [img for img in verdict["images"] if not (img["complete"] and img["naturalWidth"] > 0)]
        line = (
            f"{report}: {'OK' if verdict['ok'] else 'FAILED'}: {len(verdict['images'])} image(s) decoded "
            f"of {verdict['num_img_tags']} <img> tag(s), {len(verdict['errors'])} load error(s)"
        )
        print(line)
        for err in verdict["errors"]:
            print(f"  load error: {err}")
        for img in bad:
            print(f"  image not decoded: alt={img['alt']!r} src={img['src']!r}")
        for ref in verdict["external"]:
            print(f"  external reference: {ref}")
        for link in verdict.get("broken_links", []):
            print(f"  broken link: {link}")
        if not verdict["ok"]:
            status = 1
    if args.json:
        print(json.dumps(verdicts, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
