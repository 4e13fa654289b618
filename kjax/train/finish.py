"""The end of a run's training: ``summary.json``, ``timing.json`` and the final figures."""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

from absl import logging

from kjax import compile_cache
from kjax import figures
from kjax import files
from kjax import metric_writers
from kjax import preemption
from kjax import sharding as ksharding

FIGURES_MANIFEST = "final_figures.json"  # in WORKDIR/figures: the final figures and step


def peak_rss_mib() -> float:
  """The process's peak resident set size so far, MiB (Linux ``ru_maxrss`` is in KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _final_figures_done(fig_dir: str, step: int) -> list[str] | None:
  """The final figures of ``step`` if every one listed in ``figures/final_figures.json``
  exists (a finished run launched again makes only missing ones), else None."""
  try:
    with open(os.path.join(fig_dir, FIGURES_MANIFEST)) as f:
      manifest = json.load(f)
    paths = [os.path.join(fig_dir, p) for p in manifest["figures"]]
  except (OSError, ValueError, KeyError, TypeError):
    return None
  if manifest.get("step") != step or not all(os.path.isfile(p) for p in paths):
    return None
  return paths


def finish(config, workdir, task, state, writer, timing, train_ds, eval_ds, step,
           figure_inputs) -> tuple[dict[str, Any], dict[str, Any]]:
  """``summary.json``, ``timing.json`` and the final figures of one run (process 0 only;
  ``figure_inputs``: ``task.figure_inputs`` of the run);
  returns the first two. A finished run launched again (no step trained) rewrites nothing
  that is intact: ``summary.json`` only if it disagrees with the checkpoint's history (one
  line), the figures only if one is missing."""
  summary = dict(writer.history[-1]) if writer.history else {"step": step, "epoch": 0}
  if not ksharding.is_writer():
    writer.close()
    return summary, timing
  path = os.path.join(workdir, "summary.json")
  existed = os.path.exists(path)
  if files.update_json(path, summary) and not timing.get("steps_run") and step:
    logging.warning("kjax: rebuilt %s (it was %s) from the checkpoint at step %d", path,
                    "damaged or out of date" if existed else "missing", step)
  fig_dir = os.path.join(workdir, "figures")
  preemption.phase("final_figures", fig_dir)
  os.makedirs(fig_dir, exist_ok=True)
  t0 = time.perf_counter()
  paths = None if timing.get("steps_run") else _final_figures_done(fig_dir, step)
  if paths is None:
    paths = task.final_figures(state, figure_inputs, writer.history, fig_dir, train_ds,
                               eval_ds)
    paths.append(figures.plot_style_examples(
        os.path.join(fig_dir, "style_examples.png"), train_ds.images, train_ds.labels,
        train_ds.styles, train_ds.info,
        title=f"Thin vs thick strokes in {config.data.train_split} (per-class "
              f"{config.data.style_reduction} of pixels > {config.data.style_pixel_threshold})"))
    files.update_json(os.path.join(fig_dir, FIGURES_MANIFEST), {
        "step": int(step), "figures": [os.path.relpath(p, fig_dir) for p in paths]})
  timing = {**timing, "final_figures_s": round(time.perf_counter() - t0, 2),
            "peak_rss_mib": round(peak_rss_mib()), "compile_cache": compile_cache.stats()}
  path = os.path.join(workdir, "timing.json")
  if timing.get("steps_run") or not os.path.exists(path):
    metric_writers.write_json(path, timing)  # a re-launched finished run keeps its record
  writer.close()
  logging.info("kjax: done; %s; figures: %s",
               ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if k.startswith("eval/")),
               ", ".join(os.path.relpath(p, fig_dir) for p in paths))
  return summary, timing
