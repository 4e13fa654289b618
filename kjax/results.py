"""Summarise runs: a study's table, figures and report from finished run workdirs.

``write_results`` reads each run's ``summary.json`` (the last epoch's ``train/*`` and
``eval/*``) and ``eval/metrics.json`` (the evaluation's scalars, as ``eval/<name>``), groups
the runs by their settings without the seed, and writes to the study's workdir:

* ``results.csv``: one row per setting, ``n`` and ``<metric>_mean``, ``<metric>_std`` (sample
  standard deviation, ddof = 1; empty for n = 1) for every metric; only values that a re-run
  reproduces (no timings, no paths), floats by ``repr``, so two runs of one sweep give
  byte-identical files;
* ``results.md``: the same as mean ± std;
* ``figures/``: the rate–distortion plane (Alemi et al. 2018, "Fixing a Broken ELBO"; the
  trade-off of Islam's "Beyond Pixels" tutorial), headline metrics and the disentanglement
  scores against each swept value with ±std error bars, every run's eval curve overlaid, the settings' samples side by side;
* ``report.html``: the table, these figures and a link to each run's ``report.html``.

It trains nothing: ``python launch.py --config=... --workdir=W --mode=results`` rebuilds them.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from kjax import figures
from kjax import files
from kjax import frames as kframes
from kjax import metric_writers
from kjax import preemption

plt = figures.plt
HEADLINE = ("eval/nelbo", "eval/iwae_nll", "eval/rec", "eval/kl", "eval/active_units",
            "eval/fd", "eval/kid", "eval/class_accuracy", "eval/style_accuracy_ink",
            "eval/d_loss", "eval/g_loss")
# The disentanglement scores (``kjax.evaluation.mig``, ``dci``, ``sap``, ``factor_vae``).
DISENTANGLEMENT = ("eval/mig", "eval/dci_disentanglement", "eval/dci_completeness",
                   "eval/dci_informativeness", "eval/sap", "eval/factor_vae_score")


def _scalars(path: str, prefix: str = "") -> dict[str, float]:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    obj = json.load(f)
  obj = obj.get("metrics", obj)
  return {prefix + k: float(v) for k, v in obj.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch")}


def run_metrics(workdir: str) -> dict[str, float] | None:
  """The final metrics of a finished run: ``summary.json``'s ``train/*`` and ``eval/*`` and
  ``eval/metrics.json``'s scalars as ``eval/<name>`` (the final evaluation's value wins
  where both have one, e.g. ``iwae_nll`` with its large k). None when the run has no
  ``summary.json``."""
  if not os.path.exists(os.path.join(workdir, "summary.json")):
    return None
  out = _scalars(os.path.join(workdir, "summary.json"))
  out.update(_scalars(os.path.join(workdir, "eval", "metrics.json"), "eval/"))
  return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof = 1; NaN for one value) of ``values``."""
  a = np.asarray(values, np.float64)
  return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan


def table(runs: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
  """Rows of mean ± std over seeds.

  Args:
    runs: ``{'name', 'settings': {key: value}, 'metrics': {name: float}}`` per finished run.

  Returns:
    ``(setting keys, metric names, rows)``; each row ``{'settings': {key: value}, 'n',
    'runs': [names], 'stats': {metric: (mean, std)}}``, in the runs' order. Runs are grouped
    by every setting but ``seed``; a metric is averaged over the runs that report it.
  """
  keys = [k for k in (runs[0]["settings"] if runs else {}) if k != "seed"]
  names = sorted({m for r in runs for m in r["metrics"]})
  rows: dict[str, dict[str, Any]] = {}
  for r in runs:
    setting = {k: r["settings"][k] for k in keys}
    row = rows.setdefault(json.dumps(setting, default=repr), {"settings": setting, "runs": []})
    row["runs"].append(r)
  out = []
  for row in rows.values():
    stats = {}
    for m in names:
      values = [r["metrics"][m] for r in row["runs"] if m in r["metrics"]]
      if values:
        stats[m] = mean_std(values)
    out.append({"settings": row["settings"], "n": len(row["runs"]),
                "runs": [r["name"] for r in row["runs"]], "stats": stats})
  return keys, names, out


def _cell(x: float) -> str:
  return "" if math.isnan(x) else repr(x)


def _pm(stat: tuple[float, float] | None) -> str:
  if stat is None:
    return ""
  mean, std = stat
  return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def _short(key: str) -> str:
  return key.rsplit(".", 1)[-1]


def write_csv(path: str, keys, names, rows) -> None:
  """``results.csv`` (see the module docstring), atomically."""
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow([_short(k) for k in keys] + ["n"] + [f"{m}_{s}" for m in names for s in ("mean", "std")])
  for row in rows:
    cells = [str(row["settings"][k]) for k in keys] + [row["n"]]
    for m in names:
      stat = row["stats"].get(m)
      cells += [_cell(stat[0]), _cell(stat[1])] if stat else ["", ""]
    w.writerow(cells)
  _write(path, buf.getvalue())


def markdown(keys, names, rows, headline: Sequence[str] = HEADLINE) -> str:
  """Two Markdown tables: the ``headline`` metrics the rows have, then every metric
  (mean ± std, n)."""
  head = [m for m in headline if m in names]

  def md(cols):
    lines = ["| " + " | ".join([_short(k) for k in keys] + ["n"] + cols) + " |",
             "|" + "---|" * (len(keys) + 1 + len(cols))]
    for row in rows:
      lines.append("| " + " | ".join([str(row["settings"][k]) for k in keys] + [str(row["n"])]
                                     + [_pm(row["stats"].get(m)) for m in cols]) + " |")
    return "\n".join(lines)

  return ("## Headline metrics (mean ± sample std over seeds)\n\n" + md(head)
          + "\n\n## Every metric\n\n" + md(names) + "\n")


def _write(path: str, text: str) -> None:
  files.write_text(path, text)


# --- figures --------------------------------------------------------------------------------


def plot_rate_distortion(path: str, runs, keys) -> str | None:
  """Distortion (``eval/rec``) against rate (``eval/kl``), one point per run, one line per
  setting of the keys other than β (through the means over seeds), points labelled by β."""
  pts = [r for r in runs if "eval/kl" in r["metrics"] and "eval/rec" in r["metrics"]]
  if not pts:
    return None
  beta = next((k for k in keys if _short(k) == "beta"), None)
  others = [k for k in keys if k != beta]
  curves: dict[str, list] = {}
  for r in pts:
    label = ", ".join(f"{_short(k)}={r['settings'][k]}" for k in others) or "runs"
    curves.setdefault(label, []).append(r)
  fig, ax = plt.subplots(figsize=(7, 5))
  for i, (label, members) in enumerate(curves.items()):
    color = plt.get_cmap("tab10")(i % 10)
    ax.scatter([r["metrics"]["eval/kl"] for r in members], [r["metrics"]["eval/rec"] for r in members],
               color=color, alpha=0.5, s=18)
    by_beta: dict[Any, list] = {}
    for r in members:
      by_beta.setdefault(r["settings"].get(beta), []).append(r)
    order = sorted(by_beta, key=lambda b: (b is None, b if b is not None else 0))
    xs = [np.mean([r["metrics"]["eval/kl"] for r in by_beta[b]]) for b in order]
    ys = [np.mean([r["metrics"]["eval/rec"] for r in by_beta[b]]) for b in order]
    ax.plot(xs, ys, "-o", color=color, label=label)
    if beta:
      for b, x, y in zip(order, xs, ys):
        ax.annotate(f"β={b:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8,
                    color=color)
  ax.set_xlabel("rate: eval KL(q(z|x) ‖ p(z)) (nats/image)")
  ax.set_ylabel("distortion: eval reconstruction NLL (nats/image)")
  ax.set_title("Rate–distortion (Alemi et al. 2018): one point per run, lines through seed means")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  return figures._save(fig, path)


def plot_metric_vs_setting(path: str, rows, key: str, keys,
                           metrics: Sequence[str] = HEADLINE,
                           what: str = "Headline metrics") -> str | None:
  """The first 6 of ``metrics`` that the rows have against the swept ``key`` (mean ± std
  error bars), one line per setting of the other keys; None when no row has one or ``key``
  is not numeric."""
  values = [row["settings"][key] for row in rows]
  if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
    return None
  metrics = [m for m in metrics if any(m in row["stats"] for row in rows)][:6]
  if not metrics:
    return None
  others = [k for k in keys if k != key]
  fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6), squeeze=False)
  lines: dict[str, list] = {}
  for row in rows:
    label = ", ".join(f"{_short(k)}={row['settings'][k]}" for k in others) or "runs"
    lines.setdefault(label, []).append(row)
  positive = min(values) > 0 and max(values) / min(values) >= 8
  for ax, m in zip(axes[0], metrics):
    for label, members in lines.items():
      members = sorted((r for r in members if m in r["stats"]), key=lambda r: r["settings"][key])
      if not members:
        continue
      ax.errorbar([r["settings"][key] for r in members],
                  [r["stats"][m][0] for r in members],
                  yerr=[0 if math.isnan(r["stats"][m][1]) else r["stats"][m][1] for r in members],
                  marker="o", capsize=3, label=label)
    if positive:
      ax.set_xscale("log", base=2)
    ax.set_xlabel(_short(key))
    ax.set_title(m)
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=7)
  fig.suptitle(f"{what} against {key} (mean ± sample std over seeds)")
  return figures._save(fig, path)


def plot_eval_curves(path: str, runs) -> str | None:
  """Every run's per-epoch eval curve (``eval/nelbo``, else ``eval/d_loss``) overlaid,
  coloured by setting."""
  histories = {r["name"]: metric_writers.read_jsonl(os.path.join(r["workdir"], "metrics.jsonl"))
               for r in runs}
  metric = next((m for m in ("eval/nelbo", "eval/d_loss")
                 if any(m in h for rows in histories.values() for h in rows)), None)
  if metric is None:
    return None
  fig, ax = plt.subplots(figsize=(7, 4.5))
  colors: dict[str, Any] = {}
  for r in runs:
    setting = ",".join(f"{_short(k)}={v}" for k, v in r["settings"].items() if k != "seed")
    color = colors.setdefault(setting, plt.get_cmap("tab20")(len(colors) % 20))
    rows = [h for h in histories[r["name"]] if metric in h]
    ax.plot([h["epoch"] for h in rows], [h[metric] for h in rows], color=color, alpha=0.8,
            label=setting if setting not in ax.get_legend_handles_labels()[1] else None)
  ax.set_xlabel("epoch")
  ax.set_ylabel(metric)
  ax.set_title(f"{metric} of every run, by epoch")
  if ax.get_legend_handles_labels()[1]:  # a study without settings (seeds only): no legend
    ax.legend(fontsize=6, ncol=2)
  ax.grid(alpha=0.3)
  return figures._save(fig, path)


def plot_samples(path: str, rows, runs) -> str | None:
  """The last epoch's ``samples`` preview of each setting's first run, side by side."""
  by_name = {r["name"]: r for r in runs}
  tiles = []
  for row in rows:
    run = by_name[row["runs"][0]]
    _, frames = kframes.load_frames(os.path.join(run["workdir"], kframes.FRAMES_DIR))
    if "samples" in frames:
      label = ", ".join(f"{_short(k)}={v}" for k, v in row["settings"].items()) or run["name"]
      tiles.append((label, frames["samples"][-1]))
  if not tiles:
    return None
  cols = min(5, len(tiles))
  nrows = -(-len(tiles) // cols)
  fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.4 * nrows), squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for ax, (label, image) in zip(axes.flat, tiles):
    ax.imshow(255 - image, cmap="gray", vmin=0, vmax=255)
    ax.set_title(label, fontsize=8)
  fig.suptitle("Samples of each setting (its first seed, last epoch)")
  return figures._save(fig, path)


# --- the study ------------------------------------------------------------------------------


def write_results(workdir: str, runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Writes ``results.csv``, ``results.md``, ``figures/`` and ``report.html`` of a study.

  Args:
    workdir: the study's directory.
    runs: ``{'name', 'settings': {full key: value}, 'workdir'}`` per run of the sweep, in
      grid order; runs without ``summary.json`` are listed as missing in the report.

  Returns:
    The table rows (``table``).

  Raises:
    WriteError: a file cannot be written (full disk, unwritable workdir); the message names
      it and the OS error. Every file is written atomically, so each keeps its previous
      version or has the new one, never a part.
  """
  preemption.phase("results", workdir)
  finished, missing = [], []
  for r in runs:
    m = run_metrics(r["workdir"])
    diverged = os.path.join(r["workdir"], "diverged.json")
    if os.path.exists(diverged):
      missing.append(f"{r['name']} ({_diverged_at(diverged)})")
    elif m is None:
      missing.append(r["name"])
    else:
      finished.append({**r, "metrics": m})
  keys, names, rows = table(finished)
  write_csv(os.path.join(workdir, "results.csv"), keys, names, rows)
  text = markdown(keys, names, rows, HEADLINE + DISENTANGLEMENT)
  if missing:
    text += "\nNot in the table: " + ", ".join(missing) + "\n"
  _write(os.path.join(workdir, "results.md"), text)
  fig_dir = files.makedirs(os.path.join(workdir, "figures"))
  paths = [plot_rate_distortion(os.path.join(fig_dir, "rate_distortion.png"), finished, keys)]
  swept = [k for k in keys if len({repr(row["settings"][k]) for row in rows}) > 1]
  paths += [plot_metric_vs_setting(os.path.join(fig_dir, f"metrics_vs_{_short(k)}.png"), rows,
                                   k, keys) for k in swept]
  paths += [plot_metric_vs_setting(os.path.join(fig_dir, f"disentanglement_vs_{_short(k)}.png"),
                                   rows, k, keys, DISENTANGLEMENT, "Disentanglement scores")
            for k in swept]
  paths += [plot_eval_curves(os.path.join(fig_dir, "eval_curves.png"), finished),
            plot_samples(os.path.join(fig_dir, "samples.png"), rows, finished)]
  write_report(workdir, keys, names, rows, finished, missing, [p for p in paths if p])
  return rows


def write_report(workdir, keys, names, rows, finished, missing, paths) -> str:
  """``WORKDIR/report.html``: the headline table, the figures (embedded) and links."""
  head = [m for m in HEADLINE if m in names] or names
  th = "".join(f"<th>{html.escape(c)}</th>" for c in [_short(k) for k in keys] + ["n"] + head)
  body = "".join(
      "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in
                       [row["settings"][k] for k in keys] + [row["n"]]
                       + [_pm(row["stats"].get(m)) for m in head]) + "</tr>" for row in rows)
  figs = []
  for p in paths:
    with open(p, "rb") as f:
      data = base64.b64encode(f.read()).decode("ascii")
    rel = os.path.relpath(p, workdir)
    figs.append(f"<figure><img alt='{html.escape(rel)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(rel)}</figcaption></figure>")
  links = "".join(
      f"<li><a href='{html.escape(os.path.relpath(os.path.join(r['workdir'], 'report.html'), workdir))}'>"
      f"{html.escape(r['name'])}</a></li>" for r in finished)
  page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>kjax study</title>"
          f"<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}"
          f"td,th{{border:1px solid #ccc;padding:3px 8px}}table{{border-collapse:collapse}}"
          f"img{{max-width:100%}}</style></head><body><h1>kjax study: {len(finished)} runs</h1>"
          f"<p>Mean ± sample std over seeds; every metric in results.csv and results.md.</p>"
          f"<table><tr>{th}</tr>{body}</table>"
          + (f"<p>Not in the table: {html.escape(', '.join(missing))}</p>" if missing else "")
          + "".join(figs) + f"<h2>Runs</h2><ul>{links}</ul></body></html>\n")
  path = os.path.join(workdir, "report.html")
  _write(path, page)
  return path


def _diverged_at(path: str) -> str:
  """``'diverged at step N'`` from a run's ``diverged.json`` (``kjax.sweep``), or
  ``'diverged'`` for one written by an older kjax or damaged."""
  try:
    with open(path) as f:
      step = json.load(f).get("step")
  except (OSError, ValueError, AttributeError):
    step = None
  return "diverged" if step is None else f"diverged at step {step}"
