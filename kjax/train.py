"""The training loop shared by every kjax model: jit-compiled steps, checkpoints, metrics.

The model family (β-VAE, CVAE, CGAN) is a ``kjax.tasks.Task``; this module runs it.

PRNG discipline (DESIGN.md): one root key from ``config.seed``; fixed streams derived
from it by ``fold_in``; the step's key is ``fold_in(train_key, step)`` inside the compiled
step and the epoch's data order is a permutation drawn from ``fold_in(data_key, epoch)``.
A run is therefore a pure function of (config, data) and a resumed run replays the
same noise and batches as an uninterrupted one.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kjax import checkpointing
from kjax import errors
from kjax import data as kdata
from kjax import figures
from kjax import metric_writers
from kjax import tasks
from kjax import validation

# Settings that may change when a run is resumed: they do not change its trajectory.
_RESUMABLE_KEYS = ("train.num_epochs", "train.log_every_steps", "train.checkpoint_every_steps",
                   "train.keep_checkpoints", "train.eval_batch_size", "train.steps_per_call",
                   "data.data_dir", "data.tfds_data_dir", "data.cache_dir",
                   "data.verify_checksums", "figures", "eval.")
STREAMS = ("init", "data", "train", "eval", "figures", "evaluation")
FRAMES_DIR = "frames"  # WORKDIR/frames/epoch_NNNN.npz: the GIFs' frames


def stream_keys(seed: int) -> dict[str, jax.Array]:
  """The run's independent PRNG streams: ``init``, ``data``, ``train``, ``eval``, ``figures``."""
  root = jax.random.key(seed)
  return {name: jax.random.fold_in(root, i) for i, name in enumerate(STREAMS)}


def zero_sums(names: tuple[str, ...]) -> dict[str, jax.Array]:
  """Running sums of the train metrics ``names`` over an epoch, plus ``count`` (steps)."""
  return {k: jnp.zeros((), jnp.float32) for k in (*names, "count")}


def make_train_chunk(step_fn: Callable, steps_per_epoch: int, batch_size: int, num_steps: int):
  """A compiled function running ``num_steps`` train steps with batches drawn on the device.

  ``chunk(state, sums, data, perm, train_key) -> (state, sums)``: step ``s`` runs
  ``step_fn(state, batch, fold_in(train_key, s))`` on the rows
  ``perm[(s % steps_per_epoch) * batch_size:][:batch_size]`` of ``data`` (the whole split,
  resident on the device: ``{'images': uint8 [N, 28, 28, 1], 'labels': int32 [N],
  'styles': int32 [N]}``; ``perm`` the epoch's permutation) and adds its metrics to
  ``sums``. ``num_steps > 1`` runs a ``lax.scan`` (fewer dispatches: faster on GPUs and for
  small models, slower for the conv VAE on XLA:CPU; see DESIGN.md and ``benchmarks/``).
  """

  def chunk(state, sums, data, perm, train_key):
    def one(carry, _):
      state, sums = carry
      start = (state.step % steps_per_epoch) * batch_size
      rows = jax.lax.dynamic_slice(perm, (start,), (batch_size,))
      batch = {k: jnp.take(v, rows, axis=0) for k, v in data.items()}
      state, metrics = step_fn(state, batch, jax.random.fold_in(train_key, state.step))
      sums = {k: sums[k] + (metrics[k] if k != "count" else 1.0) for k in sums}
      return (state, sums), None

    if num_steps == 1:
      return one((state, sums), None)[0]
    return jax.lax.scan(one, (state, sums), None, length=num_steps)[0]

  return jax.jit(chunk, donate_argnums=(0, 1))


def device_data(ds: kdata.Dataset) -> dict[str, jax.Array]:
  """A split on the device: ``{'images': uint8 [N, 28, 28, 1], 'labels', 'styles': int32 [N]}``."""
  return {"images": jax.device_put(ds.images), "labels": jax.device_put(ds.labels.astype(np.int32)),
          "styles": jax.device_put(ds.styles.astype(np.int32))}


class Evaluator:
  """Exact evaluation over a whole split: padded batches and a mask, no dropped remainder.

  The split is put on the device once, padded to a multiple of ``batch_size``. Each
  batch ``b`` uses the key ``fold_in(eval_key, b)``, so every evaluation of the run sees
  the same noise and numbers are comparable across epochs.
  """

  def __init__(self, task: tasks.Task, ds: kdata.Dataset, batch_size: int, eval_key: jax.Array):
    n = len(ds)
    batch_size = min(batch_size, n)
    num_batches = -(-n // batch_size)

    def pad(a):
      out = np.zeros((num_batches * batch_size, *a.shape[1:]), a.dtype)
      out[:n] = a
      return jax.device_put(out.reshape(num_batches, batch_size, *a.shape[1:]))

    self._batches = {"images": pad(ds.images), "labels": pad(ds.labels.astype(np.int32)),
                     "styles": pad(ds.styles.astype(np.int32))}
    self._mask = pad(np.ones(n, bool))
    self._keys = [jax.random.fold_in(eval_key, b) for b in range(num_batches)]
    self._fn = jax.jit(task.eval_sums)
    self._names = task.eval_metrics

  def __call__(self, state) -> dict[str, float]:
    """Means over the split of the task's ``eval_metrics``."""
    total = None
    for b, key in enumerate(self._keys):
      batch = {k: v[b] for k, v in self._batches.items()}
      sums = self._fn(state, batch, self._mask[b], key)
      total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    total = jax.device_get(total)
    return {k: float(total[k] / total["count"]) for k in self._names}


def _flatten(config: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in config.items():
    name = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, name + "."))
    else:
      out[name] = v
  return out


def check_resumable(workdir: str, config_dict: dict) -> None:
  """Refuses ``config_dict`` if ``WORKDIR/config.json`` exists and differs from it in a
  setting that changes the run's trajectory (all but ``_RESUMABLE_KEYS``).

  Raises:
    ConfigError: naming the first differing setting and both values.
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = _flatten(json.load(f))
  new = _flatten(json.loads(json.dumps(config_dict)))  # tuples as JSON lists
  for key in sorted(set(old) | set(new)):
    if key.startswith(_RESUMABLE_KEYS):
      continue
    if old.get(key) != new.get(key):
      raise validation.ConfigError(
          f"config.{key}={new.get(key)!r} differs from {old.get(key)!r} in {path}; "
          "use another --workdir for a different experiment")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the model of ``config.model.name``, evaluating every epoch, and writes the
  workdir contract (DESIGN.md).

  Resumes from the newest checkpoint in ``workdir`` if there is one. The config and the
  data are checked before the workdir is created. With ``config.eval.at_end_of_training``
  it then runs ``kjax.evaluate.evaluate`` (``WORKDIR/eval/metrics.json``,
  ``WORKDIR/report.html``); a bad ``config.eval.classifier_workdir`` is refused before
  anything is written.

  Returns:
    The summary (also ``WORKDIR/summary.json``): step, epoch and the last epoch's
    ``train/*`` and ``eval/*`` metrics.

  Raises:
    ConfigError, DataError: a bad config value or split (nothing written).
    DataFileNotFoundError, ChecksumError: missing or non-official data (nothing written).
    NonFiniteLossError: a loss became NaN/Inf; the last good checkpoint is kept.
  """
  validation.validate_config(config)
  task = tasks.get_task(config)
  train_ds, eval_ds = kdata.load_datasets(config.data)
  if config.train.batch_size > len(train_ds):
    raise validation.ConfigError(
        f"config.train.batch_size={config.train.batch_size} is not allowed: the train split "
        f"{config.data.train_split!r} has only {len(train_ds)} examples")
  config_dict = config.to_dict()
  check_resumable(workdir, config_dict)
  from kjax import evaluate  # noqa: PLC0415  (evaluate builds on this module)
  evaluate_at_end = config.get("eval", {}).get("at_end_of_training", False)
  classifier = evaluate.classifier_for(config) if evaluate_at_end else None

  os.makedirs(workdir, exist_ok=True)
  metric_writers.write_json(os.path.join(workdir, "config.json"), config_dict)
  logging.info("kjax: %s -> %s on %s", task.describe(), workdir, jax.devices()[0].platform)

  keys = stream_keys(config.seed)
  state = task.init_state(keys["init"])
  sums = zero_sums(task.train_metrics)
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                    config.train.keep_checkpoints)
  every = config.train.checkpoint_every_steps
  restored = ckpt.restore_latest({"state": state, "sums": sums})
  if restored is not None:
    state, sums = restored["state"], restored["sums"]
    logging.info("kjax: resumed from the checkpoint at step %d", int(state.step))
  start_step = int(state.step)
  writer = metric_writers.MetricWriter(workdir, resume_step=start_step)

  batch_size = config.train.batch_size
  steps_per_epoch = len(train_ds) // batch_size
  total_steps = steps_per_epoch * config.train.num_epochs
  data = device_data(train_ds)
  permutation = jax.jit(lambda key, epoch: jax.random.permutation(
      jax.random.fold_in(key, epoch), len(train_ds)))
  chunk_size = config.train.steps_per_call
  # Looked up through the class, so that a test can patch the step.
  step_fn = functools.partial(type(task).train_step, task)
  chunks = {n: make_train_chunk(step_fn, steps_per_epoch, batch_size, n)
            for n in {chunk_size, 1}}
  evaluator = Evaluator(task, eval_ds, config.train.eval_batch_size, keys["eval"])
  fig_dir = os.path.join(workdir, "figures")
  task.start_figures(train_ds, eval_ds, keys["figures"])
  progress_every = config.figures.get("progress_every_epochs", 0)

  timing = {"compile_s": None, "steady_images_per_s": None}
  step = start_step
  t_log, step_log = time.perf_counter(), step
  t_start = t_log
  while step < total_steps:
    epoch = step // steps_per_epoch
    perm = permutation(keys["data"], epoch)
    epoch_end = (epoch + 1) * steps_per_epoch
    while step < epoch_end:
      n = chunk_size if epoch_end - step >= chunk_size else 1
      if timing["compile_s"] is None:
        t0 = time.perf_counter()
        chunks[n] = chunks[n].lower(state, sums, data, perm, keys["train"]).compile()
        timing["compile_s"] = time.perf_counter() - t0
        t_log = time.perf_counter()
      state, sums = chunks[n](state, sums, data, perm, keys["train"])
      step += n
      save_due = step // every != (step - n) // every
      if step % config.train.log_every_steps < n or step == epoch_end or save_due:
        # The only host sync between epochs; it also guards every checkpoint against NaN.
        means = {k: float(v) / float(sums["count"]) for k, v in jax.device_get(sums).items()
                 if k != "count"}
        if not all(math.isfinite(v) for v in means.values()):
          _stop_non_finite(ckpt, writer, step, epoch)
        now = time.perf_counter()
        rate = (step - step_log) * batch_size / max(now - t_log, 1e-9)
        if step_log > start_step:  # skip the window that includes the first call
          timing["steady_images_per_s"] = rate
        eta = (total_steps - step) * batch_size / max(rate, 1e-9)
        logging.info("epoch %d/%d step %d/%d %s | %.0f images/s | ETA %s",
                     epoch + 1, config.train.num_epochs, step, total_steps,
                     " ".join(f"train/{k} {means[k]:.3f}" for k in task.log_metrics),
                     rate, _hms(eta))
        t_log, step_log = now, step
      if step == epoch_end:
        train_means = jax.device_get(sums)
        metrics = {f"train/{k}": float(train_means[k] / train_means["count"])
                   for k in task.train_metrics}
        metrics.update({f"eval/{k}": v for k, v in evaluator(state).items()})
        writer.write(step, epoch + 1, metrics)
        previews = task.previews(state)
        writer.write_images(step, previews)
        save_frames(os.path.join(workdir, FRAMES_DIR), epoch + 1, previews)
        if progress_every and ((epoch + 1) % progress_every == 0 or epoch == 0
                               or step == total_steps):
          os.makedirs(os.path.join(fig_dir, "progress"), exist_ok=True)
          task.progress_figure(state, epoch + 1,
                               os.path.join(fig_dir, "progress", f"epoch_{epoch + 1:04d}.png"))
        logging.info("epoch %d: %s", epoch + 1,
                     " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        sums = zero_sums(task.train_metrics)
      if save_due:
        ckpt.save(step, {"state": state, "sums": sums})
  ckpt.save(step, {"state": state, "sums": sums})
  ckpt.close()
  timing["wall_s"] = time.perf_counter() - t_start
  timing["steps_run"] = step - start_step

  summary = dict(writer.history[-1]) if writer.history else {"step": step, "epoch": 0}
  metric_writers.write_json(os.path.join(workdir, "summary.json"), summary)
  metric_writers.write_json(os.path.join(workdir, "timing.json"), timing)
  os.makedirs(fig_dir, exist_ok=True)
  paths = task.final_figures(state, writer.history, fig_dir, train_ds, eval_ds)
  paths.append(figures.plot_style_examples(
      os.path.join(fig_dir, "style_examples.png"), train_ds.images, train_ds.labels,
      train_ds.styles, train_ds.info,
      title=f"Thin vs thick strokes in {config.data.train_split} (per-class "
            f"{config.data.style_reduction} of pixels > {config.data.style_pixel_threshold})"))
  writer.close()
  logging.info("kjax: done; %s; figures: %s",
               ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if k.startswith("eval/")),
               ", ".join(os.path.relpath(p, fig_dir) for p in paths))
  if evaluate_at_end:
    evaluate.evaluate(config, workdir, task, state, train_ds, eval_ds, classifier)
  return summary


def save_frames(directory: str, epoch: int, frames: dict[str, np.ndarray]) -> None:
  """Writes an epoch's ``Task.previews`` (uint8 tiles) to ``directory/epoch_NNNN.npz``
  atomically (temporary file, then rename); a resumed run rewrites the same file."""
  if not frames:
    return
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, f"epoch_{epoch:04d}.npz")
  with open(path + ".tmp", "wb") as f:
    np.savez_compressed(f, **frames)
  os.replace(path + ".tmp", path)


def load_frames(directory: str) -> tuple[list[int], dict[str, list[np.ndarray]]]:
  """The frames ``save_frames`` wrote: ``(epochs, {name: [uint8 [H, W] per epoch]})``,
  ascending; ``([], {})`` when there are none."""
  if not os.path.isdir(directory):
    return [], {}
  names = sorted(f for f in os.listdir(directory) if f.startswith("epoch_") and f.endswith(".npz"))
  epochs, frames = [], {}
  for name in names:
    with np.load(os.path.join(directory, name)) as npz:
      for k in npz.files:
        frames.setdefault(k, []).append(npz[k])
    epochs.append(int(name[len("epoch_"):-len(".npz")]))
  return epochs, frames


def _stop_non_finite(ckpt, writer, step, epoch):
  latest = ckpt.latest_step()
  ckpt.close()
  writer.close()
  raise errors.NonFiniteLossError(
      f"the training loss became non-finite by step {step} (epoch {epoch + 1}); the last good "
      f"checkpoint (step {latest}) is kept; lower config.optim.learning_rate and rerun")


def _hms(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
