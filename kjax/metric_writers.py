"""Where metrics go: ``metrics.jsonl``, TensorBoard (tensorboardX) and JSON files."""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from typing import Any, Mapping

from absl import logging
import numpy as np
from tensorboardX import SummaryWriter
from tensorboardX import summary as tb_summary

from kjax import files
from kjax import workdir_config


def write_json(path: str, obj: Any) -> None:
  """Writes ``obj`` as indented JSON atomically (temporary file, then rename):
  ``kjax.files.write_json``.

  Raises:
    WriteError: the file cannot be written (full disk, unwritable folder, ...); the message
      names ``path`` and the OS error, and the previous version of ``path`` is intact.
  """
  files.write_json(path, obj)


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """The rows of a ``metrics.jsonl`` ([] if it does not exist): every line that is a JSON
  object with an integer ``step``, in order; a damaged or torn line is skipped, never the
  valid lines after it."""
  if not os.path.exists(path):
    return []
  rows = []
  with open(path, "rb") as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:  # JSONDecodeError, UnicodeDecodeError
        continue
      if isinstance(row, dict) and isinstance(row.get("step"), int):
        rows.append(row)
  return rows


def jsonl_text(rows: list[dict[str, Any]]) -> str:
  """``rows`` as ``metrics.jsonl`` holds them: one JSON object per line, keys sorted."""
  return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


EVALUATION_PREFIX = "evaluation/"


class _GuardedRecords:
  """tensorboardX's ``RecordWriter`` (the events file) whose I/O errors are kept, not raised.

  The writer's thread writes and flushes the file, and an ``atexit`` hook flushes it again:
  an ``OSError`` there (a full disk) would print a traceback from the thread, leave the
  queue without a consumer (``add_scalar`` then blocks once it holds ``max_queue`` events)
  and another traceback at exit. Here the first error is kept in ``error`` and every later
  write, flush or close does nothing; kjax raises it in the main thread
  (``raise_error``) as kjax's one-line ``WriteError``.
  """

  def __init__(self, records):
    self._records = records
    self.path = records.path
    self.error: OSError | None = None

  def _guard(self, method: str, *args) -> None:
    if self.error is not None:
      return
    try:
      getattr(self._records, method)(*args)
    except OSError as e:
      self.error = e
      try:
        self._records.close()  # its descriptor; the events already on disk stay readable
      except OSError:
        pass

  def write(self, data: bytes) -> None:
    self._guard("write", data)

  def flush(self) -> None:
    self._guard("flush")

  def close(self) -> None:
    self._guard("close")


def summary_writer(logdir: str, **kwargs: Any) -> SummaryWriter:
  """A tensorboardX ``SummaryWriter`` on ``logdir`` whose events file cannot overwrite another
  and whose I/O errors never escape its thread.

  tensorboardX names the file ``events.out.tfevents.<unix seconds>.<hostname>`` and opens it
  with ``'wb'``: two writers started in the same second on one logdir (a training killed and
  resumed, the end-of-training evaluation of a tiny run) would truncate each other's file.
  The suffix ``.<nanoseconds within the second, 9 digits>.<pid>`` keeps the files apart and
  in the order TensorBoard reads them (sorted by name). ``kwargs`` go to ``SummaryWriter``.

  A write that fails (a full disk) is kept (``_GuardedRecords``), not raised in the writer's
  thread or its exit hook; ``raise_error(writer)`` raises it as a ``WriteError``.

  Raises:
    OSError: the events file cannot be created.
  """
  suffix = f".{time.time_ns() % 1_000_000_000:09d}.{os.getpid()}"
  writer = SummaryWriter(logdir=logdir, filename_suffix=suffix, **kwargs)
  events = writer.file_writer.event_writer._ev_writer  # noqa: SLF001  (tensorboardX 2.x)
  events._py_recordio_writer = _GuardedRecords(events._py_recordio_writer)  # noqa: SLF001
  writer.kjax_records = events._py_recordio_writer  # noqa: SLF001  (close() drops the chain)
  return writer


def raise_error(writer: SummaryWriter | None) -> None:
  """Raises ``kjax.errors.WriteError`` (``cannot write <events file>: <OS error>``) if a
  write of ``writer`` (from ``summary_writer``) failed; nothing for None or a healthy one."""
  records = getattr(writer, "kjax_records", None)
  if records is not None and records.error is not None:
    raise files.write_error(records.path, records.error)


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, HParam]:
  """A nested config (``ConfigDict.to_dict()``) → ``{'objective.beta': 4.0, 'seed': 0, ...}``.

  Keeps the leaves TensorBoard's HPARAMS tab can show: bool, int, float and str values as
  they are, tuples and lists as the ``str`` of the tuple (``'(32, 64)'``); None and any other
  type are left out. Names are the dotted paths of ``--config.x.y=`` overrides.
  """
  flat: dict[str, HParam] = {}
  for name, value in workdir_config.flatten(config, prefix).items():
    if isinstance(value, (tuple, list)):
      flat[name] = str(tuple(value))
    elif isinstance(value, (bool, str)):
      flat[name] = value
    elif isinstance(value, numbers.Integral):
      flat[name] = int(value)
    elif isinstance(value, numbers.Real):
      flat[name] = float(value)
  return flat


def evaluation_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
  """The finite scalar metrics of an evaluation: ``{'evaluation/<name>': float}``.

  Args:
    metrics: ``eval/metrics.json``'s ``metrics``, name → number or list (or None).

  Returns:
    Every int or float (Python or numpy, ``[]`` arrays included) that is finite, as a Python
    float under ``EVALUATION_PREFIX``; lists, arrays of other shapes, None, bools, strings
    and NaN/Inf are left out.
  """
  scalars = {}
  for name, value in metrics.items():
    if isinstance(value, np.ndarray) and value.shape == ():
      value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
      continue
    if math.isfinite(float(value)):
      scalars[f"{EVALUATION_PREFIX}{name}"] = float(value)
  return scalars


def log_evaluation(workdir: str, step: int, config: Mapping[str, Any],
                   metrics: Mapping[str, Any]) -> None:
  """Appends a finished evaluation to the run's TensorBoard log in ``workdir``.

  Writes, in a new events file of ``workdir`` (the logdir of the run's training curves, so
  TensorBoard shows them as one run):

  * every finite scalar of ``metrics`` as a scalar at ``step`` under
    ``evaluation/<name>`` (``evaluation_scalars``; e.g. ``evaluation/iwae_nll`` and
    ``evaluation/nelbo``, nats per image);
  * the HPARAMS plugin's experiment, session-start and session-end summaries
    (``tensorboardX.summary.hparams``): the session's hyper-parameters are
    ``flatten_config(config)`` (``objective.beta``, ``model.latent_dim``, ``seed``, ...) and
    its metrics the ``evaluation/*`` tags above, so that the runs of a sweep (one workdir
    each, under one ``--logdir``) line up in one table. Written into the run's own log, not
    the timestamped sub-directory of ``SummaryWriter.add_hparams``, so reruns add no runs.

  Args:
    workdir: the run's directory (TensorBoard logdir).
    step: the train step of the evaluated state.
    config: the run's config as a nested dict (``config.to_dict()``).
    metrics: ``eval/metrics.json``'s ``metrics``: name → number, list or None.

  Raises:
    WriteError: the events file cannot be written (a full disk); OSError: it cannot be
      created.
  """
  scalars = evaluation_scalars(metrics)
  writer = summary_writer(workdir)
  try:
    exp, ssi, sei = tb_summary.hparams(flatten_config(config), scalars)
    for summary in (exp, ssi, sei):
      writer.file_writer.add_summary(summary, int(step))
    for tag, value in scalars.items():
      writer.add_scalar(tag, value, int(step))
  finally:
    writer.close()
  raise_error(writer)


class MetricWriter:
  """Adds one JSON object per logged epoch to ``metrics.jsonl`` and mirrors it to TensorBoard.

  TensorBoard (tensorboardX events in ``workdir``) gets every value of ``write`` under its
  own name (``train/<metric>``, ``eval/<metric>``: per-epoch means), the scalars of
  ``write_scalars`` (``train_steps/*``, ``perf/*``: every log step, not in
  ``metrics.jsonl``) and the images of ``write_images``.

  Args:
    workdir: the run's directory.
    resume_step: lines of ``metrics.jsonl`` logged after this step (written by a run that
      was killed before its next checkpoint) are dropped, so a resumed run rewrites them;
      likewise TensorBoard hides the events of earlier files after this step (a
      ``SessionLog.START`` with ``purge_step = resume_step + 1``).
    enabled: False keeps the history in memory and writes nothing (the processes other
      than process 0 of a multi-process job, ``kjax.sharding.is_writer``).
    history: the rows up to ``resume_step`` as the checkpoint recorded them (its
      ``records`` item, ``kjax.checkpointing``): the truth, from which a missing, damaged or
      torn ``metrics.jsonl`` is rebuilt (with one log line). None (no checkpoint, or one
      saved by an older kjax): the file's valid rows up to ``resume_step``.
    tensorboard: open a TensorBoard events file (False for a finished run launched again,
      which logs nothing: no empty events file is added).

  Attributes:
    rebuilt: whether ``metrics.jsonl`` disagreed with ``history`` up to ``resume_step``
      (missing, damaged or edited lines) and was rewritten from it.
  """

  def __init__(self, workdir: str, resume_step: int = 0, enabled: bool = True,
               history: list[dict[str, Any]] | None = None, tensorboard: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    on_disk = [r for r in read_jsonl(self.path) if r["step"] <= resume_step]
    self.history = on_disk if history is None else [dict(r) for r in history]
    self.enabled = enabled
    self.rebuilt = False
    self._tb = None
    if not enabled:
      return
    # Lines after resume_step (from a run killed before its next checkpoint) are dropped:
    # training replays them. Rows up to it that disagree with the checkpoint's are damage.
    if files.update_text(self.path, jsonl_text(self.history)) and history is not None:
      self.rebuilt = jsonl_text(on_disk) != jsonl_text(self.history)
      if self.rebuilt:
        logging.warning("kjax: rebuilt %s from the checkpoint at step %d (the file had %d of "
                        "its %d rows up to that step)", self.path, resume_step,
                        sum(r in self.history for r in on_disk), len(self.history))
    if not tensorboard:
      return
    self._tb = summary_writer(workdir, flush_secs=30,
                              purge_step=int(resume_step) + 1 if resume_step else None)

  def write(self, step: int, epoch: int, metrics: Mapping[str, float]) -> dict[str, Any]:
    """Logs ``metrics`` (e.g. ``{'train/loss': 150.2, 'eval/nelbo': 160.1}``) at ``step``
    to ``metrics.jsonl`` (one line) and TensorBoard (one scalar each, same names); returns
    the line's object.

    ``metrics.jsonl`` is rewritten whole, atomically (temporary file, then rename; at most a
    few hundred short lines), so a full disk or a kill leaves its previous lines intact.

    Raises:
      WriteError: ``metrics.jsonl`` cannot be written; ``history`` and the file keep their
        previous lines, and nothing of this line reaches TensorBoard.
    """
    row = {"step": int(step), "epoch": int(epoch), **{k: float(v) for k, v in metrics.items()}}
    if not self.enabled:
      self.history.append(row)
      return row
    self._rewrite(self.history + [row])
    self.history.append(row)
    for key, value in metrics.items() if self._tb is not None else ():
      self._tb.add_scalar(key, float(value), int(step))
    raise_error(self._tb)
    return row

  def _rewrite(self, rows: list[dict[str, Any]] | None = None) -> None:
    """Rewrites ``metrics.jsonl`` with ``rows`` (default ``history``) atomically: a failed
    write (``WriteError``) leaves the file's previous lines as they were."""
    rows = self.history if rows is None else rows
    files.write_text(self.path, jsonl_text(rows))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Logs ``scalars`` (tag → number, e.g. ``{'train_steps/loss': 151.0}``) at ``step`` to
    TensorBoard only: ``metrics.jsonl`` and ``history`` keep one line per epoch.

    Raises:
      WriteError: a write to the events file failed (this one or an earlier one).
    """
    if self._tb is None:
      return
    for key, value in scalars.items():
      self._tb.add_scalar(key, float(value), int(step))
    raise_error(self._tb)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Logs uint8 ``[H, W]`` or ``[H, W, 3]`` images to TensorBoard.

    Raises:
      WriteError: a write to the events file failed (this one or an earlier one).
    """
    if self._tb is None:
      return
    for key, image in images.items():
      image = image if image.ndim == 3 else image[..., None]
      self._tb.add_image(key, image, int(step), dataformats="HWC")
    raise_error(self._tb)

  def close(self) -> None:
    """Flushes and closes the TensorBoard writer.

    Raises:
      WriteError: a write to the events file failed (now or earlier, in its thread).
    """
    if self._tb is not None:
      self._tb.close()
      raise_error(self._tb)
