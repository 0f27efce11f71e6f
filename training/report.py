"""The evaluation report: one self-contained HTML file (plots and thumbnails embedded as base64),
so it can be mailed, attached to a ticket or opened from a CI artefact without its folder."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

from inspection.atomic import replacing  # noqa: E402
from inspection.taxonomy import Taxonomy  # noqa: E402

THUMBNAIL = 128  # px, longer side of a gallery photo


@dataclass
class ReportData:
    metrics: dict[str, Any]  # what metrics.json holds
    taxonomy: Taxonomy
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # multi head -> (y, p)
    gallery: list[dict[str, Any]] = field(default_factory=list)  # worst errors, with "thumbnail" RGB


def figure_png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def confusion_plot(matrix: list[list[int]], labels: tuple[str, ...], title: str) -> str:
    counts = np.asarray(matrix)
    size = 1.2 + 0.5 * len(labels)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(counts, cmap="Blues")
    axes.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels,
             yticklabels=labels, xlabel="predicted", ylabel="true", title=title)
    for (row, column), value in np.ndenumerate(counts):
        colour = "white" if value > counts.max() / 2 else "black"
        axes.text(column, row, str(value), ha="center", va="center", color=colour, fontsize=8)
    figure.colorbar(image, ax=axes, fraction=0.046)
    return figure_png(figure)


def pr_plot(targets: np.ndarray, scores: np.ndarray, labels: tuple[str, ...], title: str) -> str | None:
    figure, axes = plt.subplots(figsize=(5, 4))
    drawn = 0
    for index, label in enumerate(labels):
        y = targets[:, index]
        if 0 < y.sum() < len(y):  # a curve needs positives and negatives
            precision, recall, _ = precision_recall_curve(y, scores[:, index])
            axes.step(recall, precision, where="post", label=label)
            drawn += 1
    if not drawn:
        plt.close(figure)
        return None
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.05), title=title)
    axes.legend(fontsize=7, loc="lower left")
    return figure_png(figure)


def reliability_plot(heads: dict[str, dict[str, Any]]) -> str:
    shown = [(name, m) for name, m in heads.items() if m.get("reliability")]
    figure, all_axes = plt.subplots(1, max(1, len(shown)), figsize=(4 * max(1, len(shown)), 3.6),
                                    squeeze=False)
    for axes, (name, metrics) in zip(all_axes[0], shown, strict=False):
        bins = [row for row in metrics["reliability"] if row["count"]]
        centres = [(row["lo"] + row["hi"]) / 2 for row in bins]
        axes.bar(centres, [row["accuracy"] for row in bins], width=1 / len(metrics["reliability"]),
                 edgecolor="black", alpha=0.7, label="observed")
        axes.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect")
        axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="observed frequency",
                 title=f"{name} (ECE {metrics['ece']:.3f})")
        axes.legend(fontsize=7, loc="upper left")
    return figure_png(figure)


def thumbnail_b64(rgb: np.ndarray) -> str:
    image = Image.fromarray(rgb)
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(png: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_number(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def summary_rows(heads: dict[str, dict[str, Any]]) -> list[list[Any]]:
    return [[name, m.get("support"), m.get("accuracy"), m.get("macro_f1"), m.get("macro_auroc"),
             m.get("macro_average_precision"), m.get("ece")] for name, m in heads.items()]


def head_section(name: str, metrics: dict[str, Any], data: ReportData) -> str:
    head = data.taxonomy.head(name)
    parts = [f"<h2>{html.escape(name)} ({head.type}-label)</h2>"]
    if not metrics.get("support"):
        return parts[0] + "<p>No labelled photos for this head in the split.</p>"
    if head.type == "single":
        rows = [[label, *(v[k] for k in ("precision", "recall", "f1", "support"))]
                for label, v in metrics["per_class"].items()]
        parts.append(_table(["class", "precision", "recall", "F1", "support"], rows))
        plot = confusion_plot(metrics["confusion_matrix"], head.labels, name)
        parts.append(_img(plot, f"{name} confusion"))
    else:
        rows = [[label, *(v[k] for k in ("threshold", "precision", "recall", "f1", "support", "auroc",
                                           "average_precision"))]
                for label, v in metrics["per_label"].items()]
        parts.append(_table(["label", "threshold", "precision", "recall", "F1", "support", "AUROC", "AP"],
                            rows))
        if name in data.scores:
            curve = pr_plot(*data.scores[name], head.labels, f"{name}: precision-recall")
            parts.append(_img(curve, f"{name} PR curves") if curve else "<p>No label has both classes.</p>")
    return "\n".join(parts)


def gallery_section(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "<h2>Worst errors</h2><p>No errors on this split.</p>"
    cards = []
    for entry in entries:
        what = entry.get("error") or f"true {entry['true']}, predicted {entry['predicted']}"
        caption = html.escape(f"{entry['head']}: {what} (confidence {entry['confidence']:.2f})")
        where = html.escape(Path(entry["image"]).name)
        src = f"data:image/jpeg;base64,{entry['thumbnail']}"
        cards.append(f'<figure><img alt="error" src="{src}"><figcaption>{caption}<br>'
                     f"<small>{where}</small></figcaption></figure>")
    return "<h2>Worst errors</h2><div class='gallery'>" + "".join(cards) + "</div>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}.gallery{display:flex;flex-wrap:wrap;gap:10px}
figure{width:170px;margin:0;font-size:12px}figure img{max-width:160px}"""


def _served_extras(m: dict) -> str:
    """What the served probabilities include beside the heads' own: the mirror image, the
    anomaly score's second opinion."""
    extras = []
    if m.get("test_time_augmentation", "none") != "none":
        extras.append(f"logits averaged with the {html.escape(m['test_time_augmentation'])}")
    if m.get("second_opinion"):
        photos = ", ".join(f"{html.escape(c)}: {n} photos" for c, n in m["second_opinion"].items())
        extras.append("the anomaly score's second opinion weighed into the heads with a "
                      f"<code>no_defect</code> label ({photos})")
    return f"<p>Served probabilities: {'; '.join(extras)}.</p>" if extras else ""


def render(data: ReportData) -> str:
    m = data.metrics
    bundle = m["bundle"]
    intro = (f"<h1>Evaluation: {html.escape(bundle['name'])} {html.escape(bundle['version'])}</h1>"
             f"<p>Split <b>{html.escape(m['split'])}</b> of {html.escape(m['manifest'])}: {m['photos']} "
             f"photos, {m['items']} items, scored through the exported ONNX bundle (model_id "
             f"{html.escape(bundle['model_id'])}) in {m['timing']['seconds']:.1f} s.</p>"
             + _served_extras(m))
    summary = _table(["head", "photos", "accuracy", "macro-F1", "macro AUROC", "macro AP", "ECE"],
                     summary_rows(m["heads"]))
    item_rows = [[key, value] for key, value in m.get("items_metrics", {}).items()]
    sections = [intro, "<h2>Summary</h2>", summary]
    if item_rows:
        sections += ["<h2>Items</h2>", _table(["metric", "value"], item_rows)]
    sections += [head_section(name, metrics, data) for name, metrics in m["heads"].items()]
    sections += ["<h2>Calibration</h2>", _img(reliability_plot(m["heads"]), "reliability diagram")]
    sections.append(gallery_section(data.gallery))
    title = f"Evaluation {html.escape(bundle['name'])}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n")


def write_report(path: Path, data: ReportData) -> Path:
    with replacing(path) as temporary:
        temporary.write_text(render(data), encoding="utf-8")
    return path
