"""Self-contained HTML report of a BrainVis run (the page ``brainvis demo`` writes).

The page needs no server and no network: every picture is embedded as a base64 ``data:`` URI
(the same pictures are also saved as PNG files beside the page, under ``figures/``), and the
only script is a small self-check that runs when the page is opened as ``report.html#check``:
it writes a JSON verdict (images present and decoded, load errors) into the page, which
:func:`check_report_in_browser` reads from a real headless Chromium.

Figures are drawn with matplotlib (Agg backend) from plain arrays, so the module does not
depend on how they were produced:

- :func:`plot_eeg_traces` — a few channels of a few recordings;
- :func:`plot_training_curves` — loss / metric curves of every training stage, read from the
  ``log_history`` of their ``trainer_state.json``;
- :func:`plot_confusion_matrix` — the EEG classifier's confusion matrix.
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
from typing import Any, Iterable, Mapping, Sequence

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
    var out = document.createElement("pre");
    out.id = "%s";
    out.textContent = JSON.stringify({ok: ok, errors: loadErrors, images: images});
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
# figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_eeg_traces(
    eeg: np.ndarray,
    path: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    channels: Sequence[int] | None = None,
    sample_rate: float = 1000.0,
    time_offset_s: float = 0.02,
) -> Path:
    """Plot a few channels of each recording (``eeg``: N x C x T) stacked with an offset; PNG.

    Args:
        eeg: recordings, channels first.
        path: PNG file to write.
        titles: one title per recording (e.g. its class name).
        channels: channel indices to draw (default: 8 channels spread over the montage).
        sample_rate: samples per second (EEG-ImageNet: 1 kHz).
        time_offset_s: time of the first sample (the standard crop starts at 20 ms).
    """
    eeg = np.asarray(eeg, dtype=np.float32)
    if eeg.ndim == 2:
        eeg = eeg[None]
    if eeg.ndim != 3:
        raise ValueError(f"eeg must be N x C x T (or C x T); got shape {tuple(eeg.shape)}.")
    num, num_channels, num_samples = eeg.shape
    if channels is None:
        channels = np.linspace(0, num_channels - 1, num=min(8, num_channels)).round().astype(int).tolist()
    bad = [c for c in channels if not 0 <= c < num_channels]
    if bad:
        raise ValueError(f"channels {bad} out of range for {num_channels} EEG channels.")
    plt = _pyplot()
    cols = min(num, 3)
    rows = math.ceil(num / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    t = time_offset_s * 1000 + np.arange(num_samples) / sample_rate * 1000
    for i, ax in enumerate(axes.flat):
        if i >= num:
            ax.axis("off")
            continue
        traces = eeg[i, list(channels)]
        spread = float(np.nanmax(np.abs(traces))) if traces.size else 1.0
        step = 2.0 * (spread or 1.0)
        for k, channel in enumerate(channels):
            ax.plot(t, traces[k] - k * step, linewidth=0.7)
        ax.set_yticks([-k * step for k in range(len(channels))])
        ax.set_yticklabels([f"ch {c}" for c in channels], fontsize=7)
        ax.set_xlabel("time (ms)")
        ax.set_title(titles[i] if titles is not None and i < len(titles) else f"recording {i}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike) -> Path:
    """Plot every stage's training loss and evaluation metrics (from ``log_history``) as PNG.

    ``histories`` maps a stage name to the ``log_history`` list of its ``trainer_state.json``;
    one panel per stage: ``loss`` and ``eval_loss`` against the step on the left axis and the
    ``eval_*accuracy*`` / ``eval_*cosine*`` metrics on the right axis.
    """
    if not histories:
        raise ValueError("plot_training_curves needs at least one stage history; got none.")
    plt = _pyplot()
    names = list(histories)
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    # legends sit under each panel (constrained layout makes room), so they never hide a curve
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.2 * rows), squeeze=False, layout="constrained")
    for ax, name in zip(axes.flat, names):
        history = histories[name]
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        drawn = False
        handles = []
        for key, style in (("loss", "-"), ("eval_loss", "o--")):
            points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
            if points:
                xs, ys = zip(*points)
                handles += ax.plot(xs, ys, style, label=key, markersize=3)
                drawn = True
        ax.set_ylabel("loss")
        metric_keys = sorted(
            {
                k
                for h in history
                for k in h
                if k.startswith("eval_") and any(w in k for w in ("accuracy", "cosine", "probe", "hit_rate"))
            }
        )
        if metric_keys:
            twin = ax.twinx()
            for i, key in enumerate(metric_keys):
                points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
                xs, ys = zip(*points)
                handles += twin.plot(xs, ys, "s:", label=key, markersize=3, color=f"C{(i + 2) % 10}")
            twin.set_ylabel("metric")
            drawn = True
        if drawn:
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7,
                      frameon=False)
        else:
            ax.text(0.5, 0.5, "no logged values", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    return _save(fig, path)


#: the confusion matrix's width in inches beyond 12 classes: at 90 dpi it fills the report's
#: 1100-pixel column without being scaled down, so 8-point labels stay ~10 pixels high
_CONFUSION_LARGE_INCHES = 12.0


def _short_label(name: str, limit: int = 22) -> str:
    """The first synonym of a class name, cut to ``limit`` characters (tick labels at 40 classes)."""
    first = str(name).split(",")[0].strip()
    return first if len(first) <= limit else first[: limit - 1] + "\u2026"


def plot_confusion_matrix(
    matrix: np.ndarray, path: str | os.PathLike, *, class_names: Sequence[str] | None = None, title: str = ""
) -> Path:
    """Plot a square confusion matrix (rows: true class, columns: predicted class) as PNG."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square; got shape {tuple(matrix.shape)}.")
    if class_names is not None and len(class_names) != matrix.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {matrix.shape[0]}-class confusion matrix.")
    plt = _pyplot()
    n = matrix.shape[0]
    size = 4.0 + 0.16 * n if n <= 12 else _CONFUSION_LARGE_INCHES
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if np.issubdtype(matrix.dtype, np.integer):  # counts: whole-number ticks
        from matplotlib.ticker import MaxNLocator

        colorbar.locator = MaxNLocator(integer=True)
        colorbar.update_ticks()
    ticks = np.arange(n)
    labels = [_short_label(c) for c in class_names] if class_names is not None else [str(i) for i in ticks]
    fontsize = 9 if n <= 12 else 8
    if n > 12:  # faint grid lines: rows and columns can be followed across 40 classes
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="#d0d7de", linewidth=0.4)
        ax.tick_params(which="minor", length=0)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(labels, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(labels, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


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
    report: str | os.PathLike, *, chromium: str | None = None, timeout: float = 120.0
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
    with tempfile.TemporaryDirectory(prefix="brainvis-chromium-") as profile:
        command = [
            executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"Chromium did not finish loading {path} within {timeout:.0f} s.") from err
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
    return verdict
