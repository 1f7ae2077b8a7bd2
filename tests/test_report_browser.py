"""The report page: figures, tables, and loading it in a real headless Chromium.

The browser tests need Debian's Chromium (``apt-get install -y chromium``; ``.ci/run`` installs
it) and are skipped, saying so, where it is missing. The demo's own report is checked in the
browser by ``tests/test_demo.py``.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brainvis_hf.plots import plot_confusion_matrix, plot_eeg_traces, plot_stage_curves
from brainvis_hf.report import (
    ReportFigure,
    ReportSection,
    ReportTable,
    check_report_in_browser,
    find_chromium,
    format_value,
    image_data_uri,
    render_report_html,
    write_report,
)

REPO = Path(__file__).resolve().parents[1]
needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="Chromium is not installed (Debian: apt-get install -y chromium)"
)


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    eeg = rng.standard_normal((4, 16, 100)).astype(np.float32)
    traces = plot_eeg_traces(eeg, out / "work" / "eeg.png", titles=["a", "b", "c", "d"], channels=[0, 5, 15])
    history = [
        {"step": 1, "loss": 3.0},
        {"step": 2, "loss": 2.5},
        {"step": 2, "eval_loss": 2.7, "eval_accuracy": 0.2},
        {"step": 4, "loss": 1.5},
        {"step": 4, "eval_loss": 2.0, "eval_accuracy": 0.4},
    ]
    curves = plot_stage_curves({"freq": history, "align": [{"step": 1, "loss": 0.5}]}, out / "work" / "curves.png")
    confusion = plot_confusion_matrix(np.eye(3, dtype=int) * 4 + 1, out / "work" / "cm.png", class_names=["x", "y", "z"])
    sheet = out / "work" / "sheet.png"
    Image.fromarray(rng.integers(0, 255, (32, 96, 3), dtype=np.uint8)).save(sheet)
    write_report(
        out,
        title="Test report <with markup>",
        subtitle="made by a test",
        notes=["Tiny random diffusion weights make noise images."],
        blocks=[
            ReportTable("Metrics", ["metric", "value"], [["top-1", 0.123456], ["FID", None], ["n", 3]]),
            ReportFigure("EEG traces", traces, "three channels"),
            ReportFigure("Training curves", curves),
            ReportFigure("Confusion matrix", confusion),
            ReportFigure("Contact sheet", sheet),
            ReportSection("Reproduce", ["Run it again."], code="brainvis demo --output demo"),
        ],
    )
    return out


def test_figures_are_pngs(report_dir):
    for name in ("eeg.png", "curves.png", "cm.png"):
        width, height = _png_size(report_dir / "work" / name)
        assert width > 100 and height > 100


def test_report_is_self_contained(report_dir):
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 4
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    # the embedded bytes are exactly the PNG files, which are also copied beside the page
    assert base64.b64decode(sources[3].split(",", 1)[1]) == (report_dir / "work" / "sheet.png").read_bytes()
    assert sorted(p.name for p in (report_dir / "figures").iterdir()) == ["cm.png", "curves.png", "eeg.png", "sheet.png"]
    assert "http://" not in page and "https://" not in page
    # text is escaped, numbers are formatted
    assert "Test report &lt;with markup&gt;" in page
    assert '<td class="num">0.1235</td>' in page and "<td>\u2014</td>" in page
    assert "brainvis demo --output demo" in page


def test_bad_inputs_have_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"eeg must be N x C x T \(or C x T\); got shape \(3,\)"):
        plot_eeg_traces(np.zeros(3), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"channels \[9\] out of range for 4 EEG channels"):
        plot_eeg_traces(np.zeros((1, 4, 10)), tmp_path / "x.png", channels=[0, 9])
    with pytest.raises(ValueError, match=r"confusion matrix must be square; got shape \(2, 3\)"):
        plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 class names for a 3-class confusion matrix"):
        plot_confusion_matrix(np.zeros((3, 3)), tmp_path / "x.png", class_names=["a", "b"])
    with pytest.raises(FileNotFoundError, match="missing.png does not exist"):
        image_data_uri(tmp_path / "missing.png")
    (tmp_path / "fake.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="neither PNG nor JPEG"):
        image_data_uri(tmp_path / "fake.png")
    with pytest.raises(ValueError, match=r"Table 'T': a row has 1 cells, expected 2"):
        render_report_html(title="x", blocks=[ReportTable("T", ["a", "b"], [[1]])])
    with pytest.raises(ValueError, match="needs at least one stage history"):
        plot_stage_curves({}, tmp_path / "x.png")
    assert format_value(float("nan")) == "nan" and format_value(2) == "2" and format_value(True) == "True"


@needs_chromium
def test_report_loads_in_chromium(report_dir):
    verdict = check_report_in_browser(report_dir)
    assert verdict["errors"] == []
    assert verdict["num_img_tags"] == 4 and len(verdict["images"]) == 4
    for image in verdict["images"]:
        assert image["complete"] and image["naturalWidth"] > 0 and image["naturalHeight"] > 0
    # the browser decoded the contact sheet at its true size
    assert (verdict["images"][3]["naturalWidth"], verdict["images"][3]["naturalHeight"]) == (96, 32)
    assert verdict["ok"] is True


@needs_chromium
def test_broken_image_is_caught_by_browser_check(report_dir, tmp_path):
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    # one picture truncated (undecodable), one pointing to a file that does not exist
    first = re.search(r'<img src="(data:image/png;base64,[^"]+)"', page).group(1)
    broken = page.replace(first, first[:60], 1).replace("</body>", '<img src="nowhere.png" alt="gone"></body>')
    (tmp_path / "report.html").write_text(broken, encoding="utf-8")
    verdict = check_report_in_browser(tmp_path)
    assert verdict["ok"] is False
    assert verdict["external"] == ["nowhere.png"]
    assert any("nowhere.png" in err for err in verdict["errors"])
    widths = [image["naturalWidth"] for image in verdict["images"]]
    assert widths[0] == 0 and widths[-1] == 0 and all(w > 0 for w in widths[1:-1])


@needs_chromium
def test_check_report_script(report_dir, tmp_path):
    script = REPO / "scripts" / "check_report.py"
    good = subprocess.run([sys.executable, str(script), str(report_dir)], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "OK: 4 image(s) decoded of 4 <img> tag(s), 0 load error(s)" in good.stdout
    (tmp_path / "report.html").write_text("<html><body><p>no check script</p></body></html>", encoding="utf-8")
    bad = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "self-check did not run" in bad.stderr


def test_check_reports_missing_page(tmp_path):
    with pytest.raises(FileNotFoundError, match="No report page at"):
        check_report_in_browser(tmp_path)
