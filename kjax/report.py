"""``WORKDIR/report.html``: one self-contained page per run (issue 4).

The page holds the run's description, the evaluation protocol, the metrics table, the
config and every figure of the run, each embedded as a ``data:`` URI, so it opens offline
and can be mailed or archived as a single file.
"""

from __future__ import annotations

import base64
import html
import json
import os
from typing import Any

from kjax import files
from kjax.workdir_config import HISTORY_FILE

REPORT = "report.html"
_MIME = {".png": "image/png", ".gif": "image/gif"}
_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-family: monospace; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; min-width: 360px; border: 1px solid #eee; image-rendering: pixelated; }
figcaption { font-family: monospace; color: #555; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
"""


def run_figures(workdir: str, listed: list[str]) -> list[str]:
  """The figures of a run, relative to ``workdir``: ``figures/*.png|gif`` (training), the
  newest ``figures/progress/`` image, then ``listed`` (the evaluation's), without duplicates."""
  out = []
  fig_dir = os.path.join(workdir, "figures")
  if os.path.isdir(fig_dir):
    out += [os.path.join("figures", f) for f in sorted(os.listdir(fig_dir))
            if os.path.splitext(f)[1] in _MIME]
    progress = os.path.join(fig_dir, "progress")
    if os.path.isdir(progress) and os.listdir(progress):
      out.append(os.path.join("figures", "progress", sorted(os.listdir(progress))[-1]))
  return list(dict.fromkeys(out + [f for f in listed if os.path.splitext(f)[1] in _MIME]))


def _embed(path: str) -> str:
  with open(path, "rb") as f:
    data = base64.b64encode(f.read()).decode("ascii")
  return f"data:{_MIME[os.path.splitext(path)[1]]};base64,{data}"


def _format(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.6g}"
  if isinstance(value, list):
    return ", ".join(_format(v) for v in value)
  return str(value)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
  head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
  body = "".join(
      "<tr>" + "".join(f'<td{" class=num" if i == 1 else ""}>{html.escape(c)}</td>'
                       for i, c in enumerate(row)) + "</tr>" for row in rows)
  return f"<table><tr>{head}</tr>{body}</table>"


def _config_history(workdir: str) -> list[str]:
  """The "Config changes" section: each ``optim.*`` change made when the run was resumed
  (``WORKDIR/config_history.json``: ``[{'step': N, 'changes': {key: {'from', 'to'}}}]``);
  nothing when the run kept its config."""
  try:
    with open(os.path.join(workdir, HISTORY_FILE)) as f:
      history = json.load(f)
    rows = [(str(entry["step"]), f"config.{key}", _format(change["from"]), _format(change["to"]))
            for entry in history for key, change in entry["changes"].items()]
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return []
  return ["<h2>Config changes during training</h2>",
          _table(rows, ("from step", "setting", "before", "after"))] if rows else []


def write_report(workdir: str, config: dict, result: dict[str, Any],
                 metric_docs: dict[str, str] | None = None) -> str:
  """Writes ``WORKDIR/report.html`` atomically and returns its path.

  Args:
    workdir: the run's directory; every figure listed is read from it.
    config: the run's config as a dict (shown as JSON).
    result: ``kjax.evaluation.evaluate``'s record (``run``, ``protocol``, ``classifier``,
      ``metrics``, ``figures``).
    metric_docs: one-line meaning of each metric name (``kjax.evaluation.METRIC_DOCS``).

  Returns:
    The path. The page lists its figures under ``<ul id="figure-list">``; each list entry
    links to a ``<figure id=...>`` holding that figure as an embedded image.

  Raises:
    WriteError: the page cannot be written (full disk, unwritable workdir); the message
      names the path and the OS error, and the previous page is intact.
  """
  metric_docs = metric_docs or {}
  run = result["run"]
  title = f"kjax report: {run['model']} — {run['description']}"
  metrics = [(name, _format(value), metric_docs.get(name, ""))
             for name, value in result["metrics"].items()]
  protocol = [(name, _format(value)) for name, value in sorted(result["protocol"].items())]
  clf = result.get("classifier")
  clf_rows = [(k, _format(v)) for k, v in clf.items()] if clf else [("classifier", "none")]
  figures = run_figures(workdir, result["figures"])
  parts = [
      f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
      f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
      _table([(k, _format(v)) for k, v in run.items()], ("run", "")),
      "<h2>Metrics</h2>", _table(metrics, ("metric", "value", "meaning")),
      "<h2>Protocol</h2>", _table(protocol, ("setting", "value")),
      "<h2>Domain classifier</h2>", _table(clf_rows, ("classifier", "")),
      "<h2>Figures</h2><ul id='figure-list'>",
      *(f"<li><a href='#fig-{i}'>{html.escape(f)}</a></li>" for i, f in enumerate(figures)),
      "</ul>",
      *(f"<figure id='fig-{i}'><img alt='{html.escape(f)}' src='{_embed(os.path.join(workdir, f))}'>"
        f"<figcaption>{html.escape(f)}</figcaption></figure>" for i, f in enumerate(figures)),
      *_config_history(workdir),
      "<h2>Config</h2><pre>", html.escape(json.dumps(config, indent=2, sort_keys=True)),
      "</pre></body></html>\n"]
  return files.write_text(os.path.join(workdir, REPORT), "".join(parts))
