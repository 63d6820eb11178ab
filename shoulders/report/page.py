"""``report.html``: one self-contained page that explains a run, results first.

The first screen answers "how good is it and where does it fail": the headline (test and validation accuracy,
the data, the plan in one sentence, the training time), then the confusion matrix and the most-confused pairs
beside the top losses with their heatmaps. Curves, per-class metrics and the advisor's matrix with its reasons
follow; the configuration comes last, folded, each value once.

The page embeds every figure as a base64 ``data:`` URI and its CSS inline, needs no JavaScript and loads nothing
from the network, so it can be mailed, archived or opened offline. Every piece of text comes from files a user
can edit, so all of it goes through :func:`html.escape`. A missing or unreadable piece (no advice, no history,
no evaluation yet) becomes a short note in its section; the page is always written.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from string import Template
from typing import Any, Mapping

from shoulders.report.headline import headline_facts
from shoulders.report.plots import confusion_figure, figure_png, history_figure
from shoulders.run_folder import (ADVICE_NAME, BAD_IMAGES_NAME, CLASSES_NAME, CONFIG_NAME, EVALUATION_NAME,
                                  HISTORY_NAME, MATRIX_NAME, METRICS_NAME, REPORT_NAME, SPLIT_NAME, TOP_LOSSES_NAME)

CONFIG_ORDER = ("backbone", "weights", "data_config", "runtime", "versions")
BAD_IMAGES_SHOWN = 20

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$title</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1320px;
       padding: 0 20px 48px; color: #1d2330; line-height: 1.4; }
header { border-bottom: 2px solid #3a6ea5; padding-bottom: 6px; }
h1 { font-size: 20px; margin: 10px 0 6px; }
nav a { margin-right: 14px; color: #3a6ea5; text-decoration: none; font-size: 14px; }
section { margin-top: 22px; }
h2 { border-bottom: 1px solid #d5dbe5; padding-bottom: 3px; font-size: 18px; margin: 0 0 8px; }
h3 { font-size: 15px; margin: 10px 0 4px; }
table { border-collapse: collapse; margin: 4px 0 10px; font-size: 13px; }
th, td { border: 1px solid #d5dbe5; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #eef2f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
.note { color: #6b5d00; background: #fff8d6; border-left: 4px solid #e0c200; padding: 6px 10px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0 4px; }
.card { border: 1px solid #d5dbe5; border-radius: 6px; padding: 4px 12px; background: #f7f9fc; }
.card .k { font-size: 12px; color: #5a6475; }
.card .v { font-size: 24px; font-weight: 600; }
.card.text .v { font-size: 14px; font-weight: 500; max-width: 560px; }
.overview { display: grid; grid-template-columns: minmax(0, 5fr) minmax(0, 7fr); gap: 18px; }
.overview img.confusion { max-height: 470px; }
.thumbs figure { display: inline-block; margin: 4px; font-size: 12px; }
.thumbs img { max-width: 160px; }
details > summary { cursor: pointer; font-size: 18px; font-weight: 600; }
</style>
</head>
<body>
<header><h1>$title</h1>$headline<nav>$nav</nav></header>
$body
</body>
</html>
""")

# Results first, then how they came about, the configuration last (folded).
_SECTIONS = (
    ("confusion", "Where it fails"),
    ("top-losses", "Top losses"),
    ("curves", "Training curves"),
    ("metrics", "Metrics"),
    ("advice", "Advice"),
    ("config", "Configuration"),
)
# config.json keys that repeat another key (train, seed: the resolved config's own) or are shown elsewhere on the
# page (the plan: in the headline and the advice; the classes: once, in the configuration)
_HEADLINE_METRICS = ("val_accuracy", "test_accuracy")
_SHOWN_ELSEWHERE = ("train", "seed", "plan", "classes", "num_classes", "config", "strategy")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """Escaped scalar; floats get 4 significant digits so tables stay readable."""
    if isinstance(value, float):
        return _esc(f"{value:.4g}")
    return _esc(value)


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _value_html(value: Any) -> str:
    """Renders nested JSON: mappings as two-column tables, lists of scalars inline, lists of objects as lists."""
    if isinstance(value, Mapping):
        if not value:
            return "<em>empty</em>"
        rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_value_html(v)}</td></tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return ", ".join(_fmt(v) for v in value) or "<em>none</em>"
        return "<ul>" + "".join(f"<li>{_value_html(v)}</li>" for v in value) + "</ul>"
    return _fmt(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    # Numbers right-aligned so that columns of metrics line up by magnitude.
    return f'<td class="num">{_fmt(value)}</td>' if isinstance(value, (int, float)) else f"<td>{_fmt(value)}</td>"


def _read_json(path: Path, notes: list[str]) -> Any | None:
    """JSON content of ``path``, or ``None`` (with a note when the file exists but cannot be parsed)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        notes.append(f"{path.name} could not be read ({error}); it was left out.")
        return None


def _config_section(run_dir: Path, config: Any, classes: list[str]) -> str:
    """config.json, folded: each value once (the plan is in the headline and the advice, not repeated here)."""
    if not isinstance(config, Mapping):
        return _note("This run folder has no readable config.json, so its configuration is unknown.")
    groups: list[tuple[str, Any]] = [(k, config[k]) for k in CONFIG_ORDER if k in config]
    resolved = config.get("config")
    if isinstance(resolved, Mapping):  # the resolved settings, less the backbone (shown above)
        settings = {section: {k: v for k, v in values.items() if not (section == "model" and k == "backbone")}
                    for section, values in resolved.items() if isinstance(values, Mapping)}
        groups.append(("settings", settings))
    strategy = config.get("strategy")
    if isinstance(strategy, Mapping):
        groups.append(("strategy", {k: v for k, v in strategy.items()
                                    if not (isinstance(resolved, Mapping) and k in resolved.get("strategy", {}))}))
    elif strategy is not None:
        groups.append(("strategy", strategy))
    # train/seed repeat the resolved config's own; a folder without one (older runs) shows them as they are
    elsewhere = _SHOWN_ELSEWHERE if isinstance(resolved, Mapping) else ("plan", "classes", "strategy")
    groups += [(k, v) for k, v in config.items() if k not in CONFIG_ORDER and k not in elsewhere]
    parts = [f"<h3>{_esc(name)}</h3>{_value_html(value)}" for name, value in groups]
    parts.append(f"<h3>Classes ({len(classes)})</h3><p>{_value_html(classes)}</p>")
    bad = _read_json(run_dir / BAD_IMAGES_NAME, [])
    if isinstance(bad, list) and bad:
        lines = [f"{b.get('path')}: {b.get('reason')}" if isinstance(b, Mapping) else str(b) for b in bad]
        shown = "\n".join(lines[:BAD_IMAGES_SHOWN]) + ("\n…" if len(lines) > BAD_IMAGES_SHOWN else "")
        parts.append(f"<h3>Skipped images ({len(lines)}, see {BAD_IMAGES_NAME})</h3><pre>{_esc(shown)}</pre>")
    return ("<details><summary>Everything config.json records (click to open)</summary>" + "".join(parts)
            + "</details>")


def _advice_section(run_dir: Path, advice: Any, config: Any) -> str:
    """The size-similarity matrix beside the reasons for the plan."""
    if not isinstance(advice, Mapping):
        reasons = (config.get("plan") or {}).get("reasons") if isinstance(config, Mapping) else None
        why = f" ({'; '.join(str(r) for r in reasons)})" if reasons else ""
        return _note(f"This run had no advice (advice.json is absent): its strategy was chosen by hand{why}.")
    figures = {k: advice[k] for k in ("quadrant", "similarity", "similarity_threshold") if k in advice}
    if isinstance(advice.get("size"), Mapping):
        figures.update({f"size: {k}": v for k, v in advice["size"].items()})
    reasons = advice.get("reasons") or []
    text = ("<h3>Why this plan</h3><ol>" + "".join(f"<li>{_esc(r)}</li>" for r in reasons) + "</ol>"
            if reasons else "") + "<h3>Measured</h3>" + _value_html(figures)
    matrix = run_dir / MATRIX_NAME
    picture = _img(matrix.read_bytes(), "size-similarity matrix") if matrix.is_file() else ""
    return f'<div class="overview"><div>{picture}</div><div>{text}</div></div>'


def _curves_section(run_dir: Path) -> str:
    history = run_dir / HISTORY_NAME
    if not history.is_file():
        return _note("No history.csv in this run folder, so there are no training curves.")
    try:
        return _img(figure_png(history_figure(history)), "training curves")
    except (OSError, ValueError, KeyError) as error:
        return _note(f"history.csv could not be plotted: {error}")


def _overall_rows(evaluation: Mapping[str, Any]) -> list[list[Any]]:
    """The evaluation's figures that the headline does not already show."""
    m = evaluation["metrics"]
    rows: list[list[Any]] = [[f"top-{k} accuracy", v] for k, v in m.get("top_k_accuracy", {}).items() if k != "1"]
    rows += [[key, m[key]] for key in ("log_loss", "ece") if key in m]
    for avg in ("macro_avg", "weighted_avg"):
        rows += [[f"{avg.replace('_avg', '')} {k}", v] for k, v in m.get(avg, {}).items()]
    return rows


def _metrics_section(evaluation: Mapping[str, Any] | None, recorded: Any) -> str:
    parts = []
    if isinstance(recorded, Mapping) and recorded:
        rows = [[k, v] for k, v in recorded.items() if not isinstance(v, (dict, list)) and k not in _HEADLINE_METRICS]
        if rows:
            parts.append("<h3>Recorded at training</h3>" + _table(["metric", "value"], rows))
    if evaluation and isinstance(evaluation.get("metrics"), Mapping):
        per_class = evaluation["metrics"].get("per_class", {})
        rows = [[name, v["precision"], v["recall"], v["f1"], v["support"]] for name, v in per_class.items()]
        parts.append(f"<h3>Evaluation ({_esc(evaluation.get('split', '?'))} split)</h3>"
                     + _table(["metric", "value"], _overall_rows(evaluation)))
        parts.append("<h3>Per class</h3>" + _table(["class", "precision", "recall", "f1", "support"], rows))
    else:
        parts.append(_note("No evaluation yet: run `shoulders evaluate` on this run for per-class metrics."))
    return "".join(parts)


def _confusion_section(run_dir: Path, evaluation: Mapping[str, Any] | None, classes: list[str]) -> str:
    """The first screen's second half: the confusion matrix and most-confused pairs beside the top losses."""
    metrics = (evaluation or {}).get("metrics") or {}
    if "confusion_matrix" not in metrics:
        return _note("No evaluation yet, so no confusion matrix or top losses: run `shoulders evaluate` on this run.")
    names = classes or list(metrics.get("per_class", {}))
    try:
        left = [_img(figure_png(confusion_figure(metrics["confusion_matrix"], names)), "confusion matrix")
                .replace("<img ", '<img class="confusion" ', 1)]
    except ValueError as error:
        left = [_note(f"The confusion matrix could not be drawn: {error}")]
    pairs = metrics.get("most_confused") or []
    if pairs:
        rows = [[p["true"], p["predicted"], p["count"]] for p in pairs]
        left.append("<h3>Most confused</h3>" + _table(["true", "predicted as", "count"], rows))
    else:
        left.append(_note("No class was confused with another."))
    gallery = run_dir / TOP_LOSSES_NAME
    right = [_img(gallery.read_bytes(), "top losses")] if gallery.is_file() and evaluation.get("top_losses") else []
    if isinstance(evaluation.get("heatmaps"), str):
        right.append(f"<p>{_esc(evaluation['heatmaps'])}</p>")
    if not evaluation.get("top_losses"):
        right.append(_note("Every image of the evaluated split was classified correctly."))
    return f'<div class="overview"><div>{"".join(left)}</div><div>{"".join(right)}</div></div>'


def _top_losses_section(run_dir: Path, evaluation: Mapping[str, Any] | None, classes: list[str]) -> str:
    """The misclassified images, worst first, as a table (the gallery is on the first screen)."""
    if not evaluation or "top_losses" not in evaluation:
        return _note("No evaluation yet, so no top losses: run `shoulders evaluate` on this run.")
    items = evaluation["top_losses"]
    if not items:
        return _note("Every image of the evaluated split was classified correctly.")
    parts = []
    thumbs = [
        f'<figure><img alt="sample {_esc(it["index"])}" src="data:image/png;base64,{_esc(it["image_png_b64"])}">'
        f"<figcaption>{_esc(_name(classes, it['true']))} / {_esc(_name(classes, it['predicted']))}"
        f" p={it['p_pred']:.2f}"
        "</figcaption></figure>"
        for it in items
        if not (run_dir / TOP_LOSSES_NAME).is_file() and it.get("image_png_b64")
    ]
    if thumbs:
        parts.append('<div class="thumbs">' + "".join(thumbs) + "</div>")
    rows = [
        [it["index"], it.get("description", it.get("path", "")), _name(classes, it["true"]),
         _name(classes, it["predicted"]), it["p_pred"], it["p_true"], it["loss"]]
        for it in items
    ]  # fmt: skip
    parts.append(_table(["index", "image", "true", "predicted", "p(predicted)", "p(true)", "loss"], rows))
    return "".join(parts)


def _name(classes: list[str], index: Any) -> str:
    """Class name for an index (or the index itself when the class list does not cover it); not yet escaped."""
    if isinstance(index, int) and 0 <= index < len(classes):
        return classes[index]
    return str(index)


def _headline(facts: list[tuple[str, str, bool]], run_dir: Path) -> str:
    if not facts:
        return f"<p>{_esc(run_dir.name)}: no metrics recorded yet</p>"
    cards = "".join(f'<div class="card{" text" if text else ""}"><div class="k">{_esc(k)}</div>'
                    f'<div class="v">{_esc(v)}</div></div>' for k, v, text in facts)
    return f'<div class="cards">{cards}</div>'


def render_report(run_dir: str | Path, evaluation: dict[str, Any] | None = None, out: str | Path | None = None) -> Path:
    """Writes ``report.html`` for a run folder.

    Args:
        run_dir: the run folder (config.json, classes.json, history.csv, metrics.json, optional advice.json,
            matrix.png, bad_images.json and the files of :func:`shoulders.report.write_evaluation`).
        evaluation: the dict returned by ``write_evaluation``; when ``None``, ``evaluation.json`` in the run folder
            is used if present.
        out: where to write the page; defaults to ``run_dir/report.html``.

    Returns:
        The path of the written page.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist; pass the folder that `shoulders train` wrote")
    notes: list[str] = []
    config = _read_json(run_dir / CONFIG_NAME, notes)
    recorded = _read_json(run_dir / METRICS_NAME, notes)
    if evaluation is None:
        evaluation = _read_json(run_dir / EVALUATION_NAME, notes)
    classes = _read_json(run_dir / CLASSES_NAME, notes)
    if not isinstance(classes, list):
        classes = list(config.get("classes") or []) if isinstance(config, Mapping) else []
    classes = [str(c) for c in classes]
    evaluation = evaluation if isinstance(evaluation, Mapping) else None
    advice = _read_json(run_dir / ADVICE_NAME, notes)
    facts = headline_facts(config, recorded, evaluation, advice, _read_json(run_dir / SPLIT_NAME, notes), classes)
    bodies = {
        "confusion": _confusion_section(run_dir, evaluation, classes),
        "top-losses": _top_losses_section(run_dir, evaluation, classes),
        "curves": _curves_section(run_dir),
        "metrics": _metrics_section(evaluation, recorded),
        "advice": _advice_section(run_dir, advice, config),
        "config": _config_section(run_dir, config, classes),
    }
    sections = "".join(f'<section id="{sid}"><h2>{title}</h2>{bodies[sid]}</section>\n' for sid, title in _SECTIONS)
    page = _PAGE.substitute(
        title=_esc(f"shoulders report — {run_dir.resolve().name}"),
        headline=_headline(facts, run_dir),
        nav="".join(f'<a href="#{sid}">{title}</a>' for sid, title in _SECTIONS),
        body="".join(_note(n) for n in notes) + sections,
    )
    path = Path(out) if out is not None else run_dir / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
