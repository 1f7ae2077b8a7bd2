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
from brainvis_hf.apps.demo_report import (
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


# --- legibility: confusion matrix at 40 classes, legends, image sizes, links -----------------


def _capture_figure(monkeypatch):
    """Keep the matplotlib figure a plot function saves (drawn), to measure its layout."""
    import brainvis_hf.plots as plots

    kept = []
    real_save = plots._save

    def save(fig, path):
        fig.canvas.draw()
        kept.append((fig, fig.canvas.get_renderer()))
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    return kept, real_save


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_confusion_matrix_is_legible_at_40_classes(tmp_path, monkeypatch):
    from brainvis_hf.data.labels import EEG_IMAGENET_WNIDS, WNID_TO_WORDS

    kept, _ = _capture_figure(monkeypatch)
    names = [WNID_TO_WORDS[w] for w in EEG_IMAGENET_WNIDS]
    matrix = np.random.default_rng(0).integers(0, 5, (40, 40))
    path = plot_confusion_matrix(matrix, tmp_path / "cm.png", class_names=names)
    width, height = _png_size(path)
    # shown in the report's ~1100-pixel column without being scaled down much
    assert 900 <= width <= 1100 and 900 <= height <= 1100
    fig, renderer = kept[0]
    ax = fig.axes[0]
    for labels in (ax.get_yticklabels(), ax.get_xticklabels()):
        assert len(labels) == 40
        assert min(label.get_fontsize() for label in labels) >= 8  # ~12 px at 110 dpi
        boxes = [label.get_window_extent(renderer) for label in labels]
        assert not any(_overlaps(a, b) for a, b in zip(boxes, boxes[1:]))  # neighbours do not collide
    # every label is inside the saved picture and names its class (first synonym, at most 22 chars)
    fig_box = fig.bbox
    for label in ax.get_yticklabels():
        box = label.get_window_extent(renderer)
        assert box.x0 >= fig_box.x0 - 1 and box.y0 >= fig_box.y0 - 1
    assert [t.get_text() for t in ax.get_yticklabels()][:1] == [names[0].split(",")[0][:22]]


def test_training_curve_legends_do_not_cover_the_curves(tmp_path, monkeypatch):
    kept, _ = _capture_figure(monkeypatch)
    history = [{"step": s, "loss": 3.0 - 0.1 * s} for s in range(1, 21)]
    history += [{"step": s, "eval_loss": 3.1 - 0.1 * s, "eval_accuracy": 0.05 * s, "eval_top3_accuracy": 0.04 * s}
                for s in range(2, 21, 2)]
    plot_stage_curves({"freq": history, "timefreq": history, "align": history}, tmp_path / "curves.png")
    fig, renderer = kept[0]
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 3
    plot_areas = [ax.get_window_extent(renderer) for ax in fig.axes]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(_overlaps(box, area) for area in plot_areas)
        assert box.y0 >= fig.bbox.y0 - 1  # and it is inside the picture
        # the curves of both axes are named in one legend
        assert {t.get_text() for t in legend.get_texts()} == {"loss", "eval_loss", "eval_accuracy",
                                                              "eval_top3_accuracy"}


def test_contact_sheet_enlarges_small_images_with_nearest_neighbour(tmp_path):
    from brainvis_hf.apps.generate_folder import write_contact_sheet

    checker = np.zeros((32, 32, 3), dtype=np.uint8)
    checker[(np.add.outer(np.arange(32), np.arange(32)) % 2) == 1] = (200, 40, 40)
    (tmp_path / "images").mkdir()
    Image.fromarray(checker).save(tmp_path / "images" / "a.png")
    manifest = {"num_images_per_eeg": 1, "eegs": [{"eeg_id": "e0", "true_label": "x", "predicted_label": "x"}],
                "images": [{"eeg_id": "e0", "sample": 0, "file": "images/a.png"}]}
    sheet = write_contact_sheet(tmp_path, manifest, thumb=128)
    pixels = np.asarray(Image.open(sheet).convert("RGB"))
    thumb_x = 4 + 1 * (128 + 4)  # second column: the generated image
    thumb_y = 18 + 16
    thumb = pixels[thumb_y : thumb_y + 128, thumb_x : thumb_x + 128]
    assert np.array_equal(thumb, np.repeat(np.repeat(checker, 4, axis=0), 4, axis=1))  # 4x4 blocks, no blur


def test_links_to_local_folders(tmp_path):
    from brainvis_hf.apps.demo_report import page_references

    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "README.md").write_text("card")
    path = write_report(tmp_path, title="t", blocks=[ReportSection(
        "Saved pipeline", ["text"], links=[("folder", "pipeline/"), ("card", "pipeline/README.md"),
                                           ("gone", "nothing/here.md")])])
    page = path.read_text(encoding="utf-8")
    assert '<a href="pipeline/">folder</a>' in page and '<a href="pipeline/README.md">card</a>' in page
    external, links, broken = page_references(path)
    assert external == [] and links == ["nothing/here.md", "pipeline/", "pipeline/README.md"]
    assert broken == ["nothing/here.md"]
