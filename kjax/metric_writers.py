"""Where metrics go: ``metrics.jsonl``, TensorBoard (tensorboardX) and JSON files."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np
from tensorboardX import SummaryWriter


def write_json(path: str, obj: Any) -> None:
  """Writes ``obj`` as indented JSON atomically (temporary file, then rename)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """The objects of a JSON-lines file ([] if it does not exist); a torn last line is skipped."""
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        break
  return rows


def log_evaluation(workdir: str, step: int, config: Mapping[str, Any],
                   metrics: Mapping[str, Any]) -> None:
  """Writes a finished evaluation to the run's TensorBoard log (to be filled in)."""
  del workdir, step, config, metrics


class MetricWriter:
  """Appends one JSON object per logged epoch to ``metrics.jsonl`` and mirrors it to TensorBoard.

  Args:
    workdir: the run's directory.
    resume_step: lines of ``metrics.jsonl`` logged after this step (written by a run that
      was killed before its next checkpoint) are dropped, so a resumed run rewrites them.
    enabled: False keeps the history in memory and writes nothing (the processes other
      than process 0 of a multi-process job, ``kjax.sharding.is_writer``).
  """

  def __init__(self, workdir: str, resume_step: int = 0, enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.history = [r for r in read_jsonl(self.path) if r["step"] <= resume_step]
    self.enabled = enabled
    self._tb = None
    if not enabled:
      return
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in self.history)
    os.replace(tmp, self.path)
    self._tb = SummaryWriter(logdir=workdir, flush_secs=30)

  def write(self, step: int, epoch: int, metrics: Mapping[str, float]) -> dict[str, Any]:
    """Logs ``metrics`` (e.g. ``{'train/loss': 150.2, 'eval/nelbo': 160.1}``) at ``step``."""
    row = {"step": int(step), "epoch": int(epoch), **{k: float(v) for k, v in metrics.items()}}
    self.history.append(row)
    if not self.enabled:
      return row
    with open(self.path, "a") as f:
      f.write(json.dumps(row, sort_keys=True) + "\n")
    for key, value in metrics.items():
      self._tb.add_scalar(key, float(value), int(step))
    return row

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Logs uint8 ``[H, W]`` or ``[H, W, 3]`` images to TensorBoard."""
    if not self.enabled:
      return
    for key, image in images.items():
      image = image if image.ndim == 3 else image[..., None]
      self._tb.add_image(key, image, int(step), dataformats="HWC")

  def close(self) -> None:
    """Flushes and closes the TensorBoard writer."""
    if self._tb is not None:
      self._tb.close()
