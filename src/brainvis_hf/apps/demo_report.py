"""Self-contained HTML report of a BrainVis run (the page ``brainvis demo`` writes).

The page needs no server and no network: every picture is embedded as a base64 ``data:`` URI
(the same pictures are also saved as PNG files beside the page, under ``figures/``), and the
only script is a small self-check that runs when the page is opened as ``report.html#check``:
it writes a JSON verdict (images present and decoded, load errors) into the page, which
:func:`check_report_in_browser` reads from a real headless Chromium.

The figures come from :mod:`brainvis_hf.plots` (``plot_eeg_traces``, ``plot_stage_curves``,
``plot_confusion_matrix``); this module lays them out in the page.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

REPORT_FILENAME = "report.html"
CHECK_ELEMENT_ID = "brainvis-report-check"

# the only script of the page: collects load errors, and on `#check` / `?check` writes a verdict
_CHECK_SCRIPT = """
(function () {
  var loadErrors = [];
  window.addEventListener("error", function (event) {
    var target = event.target || {};
    loadErrors.push(String(event.message || target.src || target.href || "unknown error"));
  }, true);
  window.addEventListener("load", function () {
    var wanted = location.hash.indexOf("check") >= 0 || location.search.indexOf("check") >= 0;
    if (!wanted) { return; }
    var images = Array.prototype.map.call(document.images, function (img) {
      return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth,
              naturalHeight: img.naturalHeight, src: img.getAttribute("src").slice(0, 40)};
    });
    var ok = loadErrors.length === 0 && images.every(function (img) {
      return img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
    });
    // where each section (h2 .. next h2) lies on the page, for the screenshot check
    var headings = Array.prototype.slice.call(document.querySelectorAll("h2"));
    var pageHeight = document.documentElement.scrollHeight;
    var sections = headings.map(function (h, i) {
      var top = h.getBoundingClientRect().top + window.scrollY;
      var next = i + 1 < headings.length ? headings[i + 1].getBoundingClientRect().top + window.scrollY : pageHeight;
      return {title: h.textContent, top: Math.round(top), bottom: Math.round(next)};
    });
    var out = document.createElement("pre");
    out.id = "%s";
    out.textContent = JSON.stringify({ok: ok, errors: loadErrors, images: images, sections: sections,
                                      pageHeight: pageHeight, pageWidth: document.documentElement.scrollWidth});
    document.body.appendChild(out);
  });
})();
""" % CHECK_ELEMENT_ID

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem; }
.subtitle { color: #57606a; margin-top: 0; }
.note { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 0.6rem 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.7rem; text-align: left; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.92rem; }
code, pre { background: #f6f8fa; border-radius: 4px; padding: 0.1rem 0.3rem; }
pre { padding: 0.6rem; overflow-x: auto; }
"""


@dataclass
class ReportFigure:
    """One picture of the report: a PNG file, its heading and a caption."""

    title: str
    path: str | os.PathLike
    caption: str = ""


@dataclass
class ReportTable:
    """A table of the report: a heading, column names and rows of cells (numbers are formatted)."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass
class ReportSection:
    """Free text (paragraphs, already plain text; HTML is escaped) under a heading."""

    title: str
    paragraphs: Sequence[str] = field(default_factory=list)
    code: str | None = None
    # (text, relative path) pairs shown as a list of links, e.g. to the saved pipeline folder
    links: Sequence[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# the page


def image_data_uri(path: str | os.PathLike) -> str:
    """The PNG/JPEG file at ``path`` as a ``data:`` URI (raises if it is missing or not an image)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Report image {path} does not exist.")
    data = path.read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        mime = "image/png"
    elif data[:3] == b"\xff\xd8\xff":
        mime = "image/jpeg"
    else:
        raise ValueError(f"Report image {path} is neither PNG nor JPEG.")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def format_value(value: Any) -> str:
    """A table cell: floats with 4 significant digits, ``None`` as an em dash, others as text."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            return str(float(value))
        return f"{float(value):.4g}"
    return str(value)


def _table_html(table: ReportTable) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        if len(row) != len(table.columns):
            raise ValueError(
                f"Table {table.title!r}: a row has {len(row)} cells, expected {len(table.columns)}: {row!r}."
            )
        cells = "".join(
            f'<td class="num">{html.escape(format_value(v))}</td>'
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            else f"<td>{html.escape(format_value(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    caption = f"<p class='subtitle'>{html.escape(table.caption)}</p>" if table.caption else ""
    return (
        f"<h2>{html.escape(table.title)}</h2>{caption}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _figure_html(figure: ReportFigure) -> str:
    uri = image_data_uri(figure.path)
    caption = f"<figcaption>{html.escape(figure.caption)}</figcaption>" if figure.caption else ""
    return (
        f"<h2>{html.escape(figure.title)}</h2><figure>"
        f'<img src="{uri}" alt="{html.escape(figure.title, quote=True)}">{caption}</figure>'
    )


def _section_html(section: ReportSection) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
    if section.links:
        items = "".join(
            f'<li><a href="{html.escape(target, quote=True)}">{html.escape(text)}</a> '
            f"<code>{html.escape(target)}</code></li>"
            for text, target in section.links
        )
        parts.append(f"<ul>{items}</ul>")
    if section.code:
        parts.append(f"<pre><code>{html.escape(section.code)}</code></pre>")
    return "".join(parts)


def render_report_html(
    *,
    title: str,
    subtitle: str = "",
    notes: Iterable[str] = (),
    blocks: Iterable[ReportFigure | ReportTable | ReportSection] = (),
) -> str:
    """The report page as one HTML string; ``blocks`` are laid out in order.

    ``notes`` are shown first in a highlighted box (e.g. what noise images mean). Every figure is
    embedded as a ``data:`` URI, so the string is the whole page.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{_CHECK_SCRIPT}</script>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="subtitle">{html.escape(subtitle)}</p>')
    for note in notes:
        parts.append(f'<div class="note"><p>{html.escape(note)}</p></div>')
    for block in blocks:
        if isinstance(block, ReportFigure):
            parts.append(_figure_html(block))
        elif isinstance(block, ReportTable):
            parts.append(_table_html(block))
        elif isinstance(block, ReportSection):
            parts.append(_section_html(block))
        else:
            raise TypeError(f"Unknown report block {type(block).__name__}; expected ReportFigure/Table/Section.")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    output_dir: str | os.PathLike,
    *,
    title: str,
    subtitle: str = "",
    notes: Iterable[str] = (),
    blocks: Iterable[ReportFigure | ReportTable | ReportSection] = (),
    filename: str = REPORT_FILENAME,
) -> Path:
    """Write the self-contained report page to ``output_dir/filename`` and return its path.

    Figure files outside ``output_dir/figures`` are copied there too, so the PNGs travel with the
    page (the page itself does not need them: it embeds every picture).
    """
    output_dir = Path(output_dir)
    figures_dir = output_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    blocks = list(blocks)
    for block in blocks:
        if isinstance(block, ReportFigure):
            source = Path(block.path)
            if source.resolve().parent != figures_dir.resolve():
                target = figures_dir / source.name
                if not source.is_file():
                    raise FileNotFoundError(f"Report image {source} does not exist.")
                shutil.copyfile(source, target)
    page = render_report_html(title=title, subtitle=subtitle, notes=notes, blocks=blocks)
    path = output_dir / filename
    path.write_text(page, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# checking the page in a real browser

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``$BRAINVIS_CHROMIUM`` first), or None."""
    explicit = os.environ.get("BRAINVIS_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else shutil.which(explicit)
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def page_references(report: str | os.PathLike) -> tuple[list[str], list[str], list[str]]:
    """``(external, links, broken_links)`` of a report page.

    ``external``: what the page would load from outside itself (``src=``, ``<link href=>``; the
    report embeds everything, so this should be empty). ``links``: its ``<a href>`` navigation
    targets (e.g. the saved pipeline folder); ``broken_links``: those that are not relative paths
    to something that exists next to the page.
    """
    import re

    path = Path(report)
    text = path.read_text(encoding="utf-8")
    external = sorted(
        set(re.findall(r"""\ssrc\s*=\s*["']((?!data:|#)[^"']+)["']""", text, flags=re.IGNORECASE))
        | set(re.findall(r"""<link\b[^>]*\shref\s*=\s*["']((?!data:|#)[^"']+)["']""", text, flags=re.IGNORECASE))
    )
    links = sorted(set(re.findall(r"""<a\b[^>]*\shref\s*=\s*["']([^"'#][^"']*)["']""", text, flags=re.IGNORECASE)))
    broken = [link for link in links if "://" in link or link.startswith("/") or not (path.parent / html.unescape(link)).exists()]
    return external, links, broken


def check_report_in_browser(
    report: str | os.PathLike, *, chromium: str | None = None, timeout: float = 120.0,
    window_size: tuple[int, int] | None = None, screenshot: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Open ``report`` (a ``report.html`` file or a folder holding one) in headless Chromium.

    The page's own check script (run by opening ``report.html#check``) reports every ``<img>``
    (``complete``, ``naturalWidth``/``naturalHeight``) and every load error; Chromium's
    ``--dump-dom`` gives back the page with that verdict in it.

    Returns:
        ``{"ok": bool, "errors": [...], "images": [...], "num_img_tags": int, "external": [...],
        "links": [...], "broken_links": [...]}`` where ``ok`` is true only if the browser saw no
        load error, every image decoded with a non-zero size, the number of images seen equals the
        number of ``<img>`` tags in the file, the page loads nothing from outside itself
        (``external`` lists such references) and every ``<a href>`` link is a relative path that
        exists (``broken_links`` lists the others).

    Raises:
        FileNotFoundError: no report file, or no Chromium found.
        RuntimeError: Chromium failed or the page's check did not run (the message says why).

    ``sections`` lists each ``<h2>`` section's title and its ``top`` / ``bottom`` on the page (CSS
    pixels, at ``window_size``), ``pageHeight`` the page's height. With ``screenshot`` (a PNG path)
    Chromium also renders the whole page there (``window_size[0]`` wide, ``pageHeight`` high), so
    a test can check that each section's band of the picture shows something.
    """
    import re

    path = Path(report)
    if path.is_dir():
        path = path / REPORT_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"No report page at {path}.")
    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError(
            "No Chromium found (tried $BRAINVIS_CHROMIUM and "
            f"{', '.join(CHROMIUM_CANDIDATES)}); on Debian: apt-get install -y chromium."
        )
    text = path.read_text(encoding="utf-8")
    num_img_tags = len(re.findall(r"<img\b", text, flags=re.IGNORECASE))
    external, links, broken_links = page_references(path)
    url = path.resolve().as_uri() + "#check"
    if screenshot is not None and window_size is None:
        window_size = (1200, 900)  # the section positions are measured at the screenshot's width

    def run_chromium(*mode: str, size: tuple[int, int] | None):
        with tempfile.TemporaryDirectory(prefix="brainvis-chromium-") as profile:
            command = [
                executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                *([f"--window-size={size[0]},{size[1]}"] if size else []), *mode, url,
            ]
            try:
                return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as err:
                raise RuntimeError(f"Chromium did not finish loading {path} within {timeout:.0f} s.") from err

    result = run_chromium("--dump-dom", size=window_size)
    match = re.search(rf'<pre id="{CHECK_ELEMENT_ID}">(.*?)</pre>', result.stdout, flags=re.DOTALL)
    if match is None:
        raise RuntimeError(
            f"The report's self-check did not run in Chromium (exit code {result.returncode}); is {path} a "
            f"brainvis report? Chromium stderr (last lines):\n" + "\n".join(result.stderr.splitlines()[-10:])
        )
    verdict = json.loads(html.unescape(match.group(1)))
    verdict["num_img_tags"] = num_img_tags
    verdict["links"] = links
    verdict["broken_links"] = broken_links
    verdict["external"] = external
    verdict["ok"] = (bool(verdict.get("ok")) and len(verdict.get("images", [])) == num_img_tags and not external
                     and not broken_links)
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        result = run_chromium(f"--screenshot={shot}", size=(window_size[0], int(verdict.get("pageHeight") or 2000)))
        if not shot.is_file():
            raise RuntimeError(f"Chromium wrote no screenshot of {path} (exit code {result.returncode}): "
                               + "\n".join(result.stderr.splitlines()[-5:]))
        verdict["screenshot"] = str(shot)
    return verdict
