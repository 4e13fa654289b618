r"""The Kuzushiji generative benchmark (``configs/benchmark.py``): several studies, each a
sweep of one model family over its settings and the same seeds, evaluated with the shipped
reference evaluator, in one command and one table.

A benchmark config has ``data`` (every study's), ``seeds``, ``max_epochs`` (> 0 caps each
study's ``train.num_epochs``) and ``studies``: name → a model config with a ``sweep``
section (its axes; ``seed`` is added from ``seeds``) and no ``data`` section. Each study
runs as a sweep (``kjax.sweep.run_sweep``) in ``WORKDIR/<study>/``, with its own
``results.csv``, ``results.md``, figures and report; then ``WORKDIR/results.md`` holds the
protocol (splits, evaluator and its hash, k, sample counts, epochs, software versions) and
every study's table of mean ± sample std over seeds.
"""

from __future__ import annotations

import json
import os
import platform as py_platform
from importlib import metadata
from typing import Any

import jax
import ml_collections
import numpy as np

from kjax import errors
from kjax import results
from kjax import sharding
from kjax import sweep

# The columns of the benchmark's headline tables, where a study has them.
HEADLINE = ("eval/nelbo", "eval/iwae_nll", "eval/kl", "eval/active_units", "eval/fd",
            "eval/kid", "eval/precision", "eval/recall", "eval/recall_prior", "eval/density",
            "eval/coverage", "eval/coverage_prior",
            "eval/class_accuracy", "eval/cas", "eval/style_accuracy_ink",
            "eval/memorisation_pixel_ratio", "eval/memorised_fraction_pixel", "eval/mig",
            "eval/dci_disentanglement", "eval/sap", "eval/factor_vae_score")
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scikit-learn",
            "kjax")


def is_benchmark(config: ml_collections.ConfigDict) -> bool:
  """Whether ``config`` is a benchmark (has a ``studies`` section)."""
  return "studies" in config


def studies(config: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
  """Each study's sweep config: its model config with the benchmark's ``data``, its
  ``sweep.seed`` = ``seeds`` and epochs capped at ``max_epochs`` (when > 0).

  Raises:
    ConfigError: no study, bad ``seeds`` or ``max_epochs``, or a study without a ``sweep``
      section or with its own ``data`` section.
  """
  seeds, max_epochs = config.get("seeds"), config.get("max_epochs", 0)
  if (not isinstance(seeds, (tuple, list)) or not seeds
      or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
    raise errors.ConfigError(f"config.seeds={seeds!r} is not allowed: expected a non-empty "
                             "tuple of integers >= 0, e.g. '(0,1,2)'")
  if not isinstance(max_epochs, int) or isinstance(max_epochs, bool) or max_epochs < 0:
    raise errors.ConfigError(f"config.max_epochs={max_epochs!r} is not allowed: expected an "
                             "integer >= 0 (0: each study's own epochs)")
  if not config.studies:
    raise errors.ConfigError("config.studies is empty: expected at least one study")
  out = {}
  for name, study in config.studies.items():
    if "sweep" not in study or "data" in study:
      raise errors.ConfigError(f"config.studies.{name} is not allowed: expected a model config "
                               "with a sweep section and no data section")
    c = ml_collections.ConfigDict(study.to_dict())
    c.data = ml_collections.ConfigDict(config.data.to_dict())
    c.sweep.seed = tuple(seeds)
    if max_epochs:
      c.train.num_epochs = min(c.train.num_epochs, max_epochs)
    out[name] = c
  return out


def _plan(config, workdir):
  plan = studies(config)
  for name, c in plan.items():  # every run of every study is valid before the first write
    try:
      sweep.expand(c, os.path.join(workdir, name))
    except errors.ConfigError as e:
      raise errors.ConfigError(f"config.studies.{name}: {e}") from None
  return plan


def run_benchmark(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs every study (``kjax.sweep.run_sweep`` in ``WORKDIR/<study>/``; finished runs
  are reused, so a killed benchmark resumes), then ``write_results``.

  Returns:
    ``{study: its table rows}``.

  Raises:
    ConfigError, DataError, DataFileNotFoundError, ChecksumError: bad input; checked for
      every study before anything is written.
  """
  plan = _plan(config, workdir)
  for name, c in plan.items():
    sweep.run_sweep(c, os.path.join(workdir, name))
  if not sharding.is_writer():  # a multi-process job: process 0 writes the results
    return {}
  return write_results(config, workdir, plan)


def rebuild_results(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """``--mode=results``: every study's results and ``WORKDIR/results.md``, training nothing.

  Raises:
    ConfigError: ``workdir`` holds no finished run of any study (nothing is written).
  """
  plan = _plan(config, workdir)
  runs = {name: sweep.expand(c, os.path.join(workdir, name)) for name, c in plan.items()}
  if not any(os.path.exists(os.path.join(r.workdir, "summary.json"))
             for study in runs.values() for r in study):
    raise errors.ConfigError(f"--workdir={workdir!r} holds no finished run of this benchmark")
  for name, study in runs.items():
    os.makedirs(os.path.join(workdir, name), exist_ok=True)
    sweep.write_results(study, os.path.join(workdir, name))
  return write_results(config, workdir, plan)


def evaluate_benchmark(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """``--mode=evaluate``: re-evaluates every trained run of every study, then the results."""
  plan = _plan(config, workdir)
  for name, c in plan.items():
    sweep.evaluate_sweep(c, os.path.join(workdir, name))
  return write_results(config, workdir, plan)


def software_versions() -> dict[str, str]:
  """Versions of Python and the numerical packages, and the platform's device kind."""
  out = {"python": py_platform.python_version()}
  for package in PACKAGES:
    try:
      out[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      out[package] = "not installed"
  device = jax.devices()[0]
  out["device"] = f"{device.platform} ({device.device_kind})"
  return out


def _first_evaluation(runs) -> dict[str, Any]:
  """The ``eval/metrics.json`` of the first evaluated run (``{}`` if none is)."""
  for run in runs:
    path = os.path.join(run.workdir, "eval", "metrics.json")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        return json.load(f)
  return {}


def per_class_table(finished: list[dict[str, Any]], data_name: str) -> list[str]:
  """Markdown lines of the class accuracy of each class (``class_accuracy_per_class`` of
  the runs' ``eval/metrics.json``: the share of a class's samples that the evaluator
  assigns to it), mean ± sample std over seeds per setting; none for a study without it.

  Args:
    finished: ``{'name', 'settings': {full key: value}, 'workdir'}`` per finished run.
    data_name: the data set (``kjax.data.catalog``), for the classes' names.
  """
  from kjax.data import catalog  # noqa: PLC0415
  groups: dict[str, list[list[float]]] = {}
  for r in finished:
    path = os.path.join(r["workdir"], "eval", "metrics.json")
    try:
      with open(path, encoding="utf-8") as f:
        per = json.load(f)["metrics"].get("class_accuracy_per_class")
    except (OSError, ValueError, KeyError):
      continue
    if per:
      setting = ", ".join(f"{results._short(k)}={v}" for k, v in r["settings"].items()
                          if k != "seed") or "default"
      groups.setdefault(setting, []).append(per)
  if not groups:
    return []
  info = catalog.get_dataset_info(data_name)
  k = len(next(iter(groups.values()))[0])
  lines = ["### Class accuracy per class (mean ± sample std over seeds)", "",
           "| setting | n | " + " | ".join(info.label(c) for c in range(k)) + " |",
           "|---|---|" + "---|" * k]
  for setting, values in groups.items():
    a = np.asarray(values, dtype=float)
    std = a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(k)
    lines.append(f"| {setting} | {len(a)} | "
                 + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(a.mean(axis=0), std)) + " |")
  return lines + [""]


def write_results(config: ml_collections.ConfigDict, workdir: str,
                  plan: dict[str, ml_collections.ConfigDict]) -> dict[str, Any]:
  """``WORKDIR/results.md``: the protocol, then per study its headline table (``HEADLINE``
  columns it has), its table of every metric and (conditional models) the class accuracy
  of each class (``per_class_table``), mean ± sample std over seeds.

  Returns:
    ``{study: table rows}`` (``kjax.results.table``).
  """
  lines = ["# Kuzushiji generative benchmark", "",
           f"Data: `{config.data.name}`, train split `{config.data.train_split}`, eval split "
           f"`{config.data.eval_split}`; seeds {tuple(config.seeds)}; every number is the mean ± "
           "sample standard deviation (ddof = 1) over the seeds.", ""]
  lines += ["Software: " + ", ".join(f"{k} {v}" for k, v in software_versions().items()), ""]
  tables = {}
  for name, c in plan.items():
    study_dir = os.path.join(workdir, name)
    runs = sweep.expand(c, study_dir)
    finished = [{"name": r.name, "settings": r.settings, "workdir": r.workdir,
                 "metrics": m} for r in runs if (m := results.run_metrics(r.workdir))
                and not os.path.exists(os.path.join(r.workdir, sweep.DIVERGED))]
    keys, names, rows = results.table(finished)
    tables[name] = rows
    first = _first_evaluation(runs)
    protocol = first.get("protocol", {})
    counts = {k: protocol[k] for k in ("num_generated", "num_real_eval", "iwae_samples",
                                       "iwae_examples", "prdc_k", "kid_subsets",
                                       "kid_subset_size") if k in protocol}
    varied = {k.rsplit(".", 1)[-1]: v for k, v in sweep.axes(c).items() if k != "seed"}
    lines += [f"## {name}", "",
              f"Model `{c.model.name}`"
              + (f" (`{c.model.architecture}`)" if "architecture" in c.model
                 and "architecture" not in varied else "")
              + (", varying " + ", ".join(f"{k} {v}" for k, v in varied.items())
                 if varied else "") + ".",
              "", f"{len(finished)} of {len(runs)} runs finished; {c.train.num_epochs} epochs; "
              + ", ".join(f"{k} {v}" for k, v in counts.items())
              + f". Per run: `{name}/runs/<settings>/`; figures in `{name}/figures/`.", ""]
    d = first.get("classifier")
    if d:  # as the runs recorded it (metrics.json), not as configured now
      lines += [f"Evaluator: `{d['source']}`, params_sha256 `{d['params_sha256']}` (trained "
                f"on {d['data']} `{d['train_split']}`; features: {d['features']}).", ""]
    if protocol.get("cas"):
      lines += [f"CAS: {protocol['cas']}.", ""]
    if protocol.get("memorisation"):
      lines += [f"Memorisation: {protocol['memorisation']}.", ""]
    lines += [results.markdown(keys, names, rows, headline=HEADLINE).replace("## ", "### "), ""]
    lines += per_class_table(finished, config.data.name)
  text = "\n".join(lines)
  os.makedirs(workdir, exist_ok=True)
  results._write(os.path.join(workdir, "results.md"), text)
  return tables
