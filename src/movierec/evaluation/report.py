"""Evaluation results as a text table, JSON lines and a Markdown report with plots.

Plots are drawn with matplotlib when it is importable (the ``plots`` extra);
otherwise small SVG charts are written by hand, so a report always has them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from movierec.evaluation.protocols import Result, compare

__all__ = ["format_table", "json_lines", "metric_columns", "paired_differences", "write_report"]

#: metric families compared pair-wise against the first model
_PAIRED = ("ndcg", "recall", "hr", "rmse", "mae", "clicks")

#: metric families in display order; others follow alphabetically
_ORDER = (
    "rmse",
    "mae",
    "hr",
    "recall",
    "precision",
    "ndcg",
    "mrr",
    "coverage",
    "novelty",
    "popularity",
    "diversity",
)


def _sort_key(name: str) -> tuple[int, int, str]:
    family, _, k = name.partition("@")
    rank = _ORDER.index(family) if family in _ORDER else len(_ORDER)
    return (int(k) if k.isdigit() else 0, rank, name)


def metric_columns(results: Sequence[Result]) -> list[str]:
    """Metric names present in any result, ordered by cut-off, then family."""
    names = {k for r in results for k in r.metrics}
    return sorted(names, key=_sort_key)


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.4f}"


def _rows(results: Sequence[Result], *, ci: bool) -> tuple[list[str], list[list[str]]]:
    cols = metric_columns(results)
    header = ["model", *cols, "fit s", "eval s"]
    rows = []
    for r in results:
        if not r.supported:
            rows.append([r.model, *(["n/a"] * len(cols)), "n/a", "n/a"])
            continue
        cells = []
        for c in cols:
            cell = _fmt(r.metrics.get(c))
            if ci and c in r.ci:
                lo, hi = r.ci[c]
                cell += f" [{_fmt(lo)}, {_fmt(hi)}]"
            cells.append(cell)
        rows.append([r.model, *cells, f"{r.fit_seconds:.2f}", f"{r.eval_seconds:.2f}"])
    return header, rows


def _footer(results: Sequence[Result]) -> list[str]:
    lines = []
    for r in results:
        if not r.supported:
            lines.append(f"{r.model}: unsupported - {r.message}")
    notes = dict.fromkeys(n for r in results for n in r.notes)
    lines.extend(f"note: {n}" for n in notes)
    return lines


def paired_differences(
    results: Sequence[Result], n_resamples: int = 1000
) -> dict[str, dict[str, dict[str, float]]]:
    """Each later model against the first, on their common users: per model name, per headline
    metric (NDCG, recall, HR, RMSE, MAE, clicks; averaged over session sizes where there are
    several), :func:`movierec.evaluation.protocols.compare`'s dict (``mean_diff`` is
    ``model - first``, with its 95 % interval and p-value). Seeded by the first result's seed."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    if len(results) < 2 or not results[0].supported:
        return out
    first = results[0]
    for r in results[1:]:
        if not r.supported:
            continue
        metrics = [
            k for k in r.per_user if k in first.per_user and "[" not in k and k.split("@")[0] in _PAIRED
        ]
        rng = np.random.default_rng([first.seed, 7])
        out[r.model] = {m: compare(r, first, m, rng, n_resamples) for m in sorted(metrics, key=_sort_key)}
    return out


def _by_k_lines(results: Sequence[Result]) -> list[str]:
    """Per session size: one row per model (protocols with sizes only)."""
    ok = [r for r in results if r.supported and r.by_k]
    if not ok:
        return []
    cols = sorted({m for r in ok for v in r.by_k.values() for m in v}, key=_sort_key)
    header = ["model", "k", *cols]
    rows = [
        [r.model, str(size), *(_fmt(values.get(c)) for c in cols)]
        for r in ok
        for size, values in sorted(r.by_k.items())
    ]
    return ["", "by session size k (first k likes as the session):", *_aligned(header, rows)]


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    """Header, a rule and the rows as text lines: the first column left-aligned, the rest right."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, ["-" * w for w in widths], *rows]
    ]


def _paired_lines(results: Sequence[Result]) -> list[str]:
    diffs = paired_differences(results)
    if not diffs:
        return []
    lines = ["", f"paired differences against {results[0].model} (same users; 95% CI, p):"]
    for model, by_metric in diffs.items():
        cells = [
            f"{m} {d['mean_diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] p={d['p_value']:.3f}"
            for m, d in by_metric.items()
        ]
        lines.append(f"  {model}: " + "; ".join(cells))
    return lines


def format_table(results: Sequence[Result], *, ci: bool = False) -> str:
    """A plain-text table: one row per model, metric means (``ci=True`` adds 95 % intervals),
    then per-session-size figures where the protocol has sizes, then paired differences
    against the first model."""
    if not results:
        return "(no results)"
    header, rows = _rows(results, ci=ci)
    first = results[0]
    lines = [
        f"{first.protocol} on {first.dataset} (split: {first.split}, seed {first.seed}, {first.n_users} users)",
        *_aligned(header, rows),
    ]
    lines.extend(_by_k_lines(results))
    lines.extend(_paired_lines(results))
    lines.extend(_footer(results))
    return "\n".join(lines)


def json_lines(results: Sequence[Result]) -> list[str]:
    """One compact JSON object per result (see :meth:`Result.to_dict`); every model after
    the first also carries ``paired``: its :func:`paired_differences` against the first."""
    diffs = paired_differences(results)
    out = []
    for r in results:
        d = r.to_dict()
        if r.model in diffs and r is not results[0]:
            d["paired"] = {
                m: {k: round(float(v), 6) for k, v in c.items()} for m, c in diffs[r.model].items()
            }
        out.append(json.dumps(d))
    return out


def _markdown_table(results: Sequence[Result]) -> str:
    header, rows = _rows(results, ci=False)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


# -------------------------------------------------------------------- plots


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plot_ndcg_mpl(series: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        ax.plot(np.arange(1, len(ys) + 1), ys, marker=".", label=name)
    ax.set_xlabel("K")
    ax.set_ylabel("NDCG@K")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_popularity_mpl(series: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    edges = _log_edges(series)
    for name, values in series.items():
        ax.hist(values + 1, bins=edges, histtype="step", label=name, density=True)
    ax.set_xscale("log")
    ax.set_xlabel("training ratings of recommended movie (+1)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _log_edges(series: dict[str, np.ndarray], n_bins: int = 20) -> np.ndarray:
    top = max((float(v.max()) for v in series.values() if v.size), default=1.0) + 1.0
    return np.logspace(0.0, math.log10(max(top, 2.0)) + 1e-9, n_bins + 1)


_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_W, _H, _PAD = 520, 320, 50


def _svg(body: list[str], xlabel: str, ylabel: str, names: Sequence[str]) -> str:
    legend = [
        f'<text x="{_W - 140}" y="{20 + 16 * i}" fill="{_COLOURS[i % len(_COLOURS)]}" '
        f'font-size="12">{escape(n)}</text>'
        for i, n in enumerate(names)
    ]
    axes = [
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - 10}" y2="{_H - _PAD}" stroke="black"/>',
        f'<line x1="{_PAD}" y1="10" x2="{_PAD}" y2="{_H - _PAD}" stroke="black"/>',
        f'<text x="{_W / 2}" y="{_H - 10}" text-anchor="middle" font-size="12">{escape(xlabel)}</text>',
        f'<text x="14" y="{_H / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {_H / 2})">{escape(ylabel)}</text>',
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" font-family="sans-serif">'
        '<rect width="100%" height="100%" fill="white"/>' + "".join(axes + body + legend) + "</svg>\n"
    )


def _xy(x: float, y: float, x_max: float, y_max: float, x_min: float = 0.0) -> tuple[float, float]:
    px = _PAD + (x - x_min) / max(x_max - x_min, 1e-12) * (_W - _PAD - 20)
    py = (_H - _PAD) - y / max(y_max, 1e-12) * (_H - _PAD - 20)
    return px, py


def _ticks(
    x_max: float, y_max: float, x_labels: Sequence[tuple[float, str]], x_min: float = 0.0
) -> list[str]:
    out = []
    for frac in (0.0, 0.5, 1.0):
        _, py = _xy(0, frac * y_max, 1, y_max)
        out.append(
            f'<text x="{_PAD - 4}" y="{py + 4}" text-anchor="end" font-size="10">{frac * y_max:.3g}</text>'
        )
    for x, label in x_labels:
        px, _ = _xy(x, 0, x_max, 1, x_min)
        out.append(
            f'<text x="{px}" y="{_H - _PAD + 14}" text-anchor="middle" font-size="10">{escape(label)}</text>'
        )
    return out


def _plot_ndcg_svg(series: dict[str, np.ndarray], path: Path) -> None:
    k_max = max(len(v) for v in series.values())
    y_max = max(float(np.nanmax(v)) if v.size else 0.0 for v in series.values()) * 1.1 or 1.0
    body = []
    for i, ys in enumerate(series.values()):
        pts = " ".join(
            "{:.1f},{:.1f}".format(*_xy(k, float(y), k_max, y_max, 1)) for k, y in enumerate(ys, 1)
        )
        body.append(
            f'<polyline points="{pts}" fill="none" stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="2"/>'
        )
    labels = [(float(k), str(k)) for k in sorted({1, k_max, *range(5, k_max + 1, 5)})]
    body += _ticks(k_max, y_max, labels, 1)
    path.write_text(_svg(body, "K", "NDCG@K", list(series)), encoding="utf-8")


def _plot_popularity_svg(series: dict[str, np.ndarray], path: Path) -> None:
    edges = np.log10(_log_edges(series))
    dens = {n: np.histogram(np.log10(v + 1.0), bins=edges)[0] / max(v.size, 1) for n, v in series.items()}
    y_max = max(float(d.max()) for d in dens.values()) * 1.1 or 1.0
    x_max = float(edges[-1])
    body = []
    for i, d in enumerate(dens.values()):
        pts = []
        for lo, hi, y in zip(edges[:-1], edges[1:], d, strict=True):
            pts += [
                "{:.1f},{:.1f}".format(*_xy(lo, y, x_max, y_max)),
                "{:.1f},{:.1f}".format(*_xy(hi, y, x_max, y_max)),
            ]
        body.append(
            f'<polyline points="{" ".join(pts)}" fill="none" stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="2"/>'
        )
    labels = [(float(e), f"{10**e:.0f}") for e in range(int(x_max) + 1)]
    body += _ticks(x_max, y_max, labels)
    path.write_text(
        _svg(
            body,
            "training ratings of recommended movie (+1, log scale)",
            "share of recommendations",
            list(series),
        ),
        encoding="utf-8",
    )


def write_report(results: Sequence[Result], directory: str | Path) -> Path:
    """Write ``report.md`` (table, CIs, notes, plots) and ``results.jsonl`` into ``directory``.

    Plots: ``ndcg_at_k`` (NDCG@K against K) and ``popularity`` (distribution of the
    training popularity of recommended movies), as PNG with matplotlib or as
    hand-written SVG without it. Returns the path of ``report.md``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("\n".join(json_lines(results)) + "\n", encoding="utf-8")
    ok = [r for r in results if r.supported]
    lines: list[str] = []
    if results:
        r0 = results[0]
        lines += [
            f"# {r0.protocol} on {r0.dataset}",
            "",
            f"Split: {r0.split}; seed {r0.seed}; {r0.n_users} evaluated users.",
            "",
        ]
    lines += [_markdown_table(results), ""]
    lines += [f"- {line}" for line in _footer(results)]
    if ok:
        lines += ["", "## 95 % bootstrap intervals", ""]
        for r in ok:
            cis = ", ".join(
                f"{k} [{_fmt(lo)}, {_fmt(hi)}]"
                for k, (lo, hi) in sorted(r.ci.items(), key=lambda x: _sort_key(x[0]))
            )
            lines.append(f"- **{r.model}**: {cis}")
    mpl = _has_matplotlib()
    ext = "png" if mpl else "svg"
    plots: list[tuple[str, str, Any, Any]] = [
        ("NDCG@K against K", "ndcg_at", _plot_ndcg_mpl, _plot_ndcg_svg),
        ("Popularity of recommended movies", "rec_popularity", _plot_popularity_mpl, _plot_popularity_svg),
    ]
    for title, key, draw_mpl, draw_svg in plots:
        series = {
            r.model: np.asarray(r.curves[key], np.float64)
            for r in ok
            if key in r.curves and len(r.curves[key])
        }
        if not series:
            continue
        path = out / f"{key}.{ext}"
        (draw_mpl if mpl else draw_svg)(series, path)
        lines += ["", f"## {title}", "", f"![{title}]({path.name})"]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / "report.md"
