"""Training and evaluation of the β-VAE: pure, jit-compiled steps and the loop around them.

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
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from kjax import checkpointing
from kjax import errors
from kjax import data as kdata
from kjax import figures
from kjax import metric_writers
from kjax import objectives
from kjax import validation
from kjax.models import vae

METRICS = ("loss", "rec", "kl", "nelbo")
# Stream indices folded into the root key.
_INIT, _DATA, _TRAIN, _EVAL, _FIGURES = range(5)
# Settings that may change when a run is resumed: they do not change its trajectory.
_RESUMABLE_KEYS = ("train.num_epochs", "train.log_every_steps", "train.checkpoint_every_steps",
                   "train.keep_checkpoints", "train.eval_batch_size", "train.steps_per_call",
                   "data.data_dir", "data.tfds_data_dir", "data.cache_dir",
                   "data.verify_checksums", "figures")


class TrainState(train_state.TrainState):
  """Flax ``TrainState`` plus per-run hyper-parameters carried as arrays.

  Attributes:
    hparams: ``{'beta': float32 []}``; arrays, so that a sweep can ``vmap`` the step over
      a leading run axis with a different β per run. The learning rate lives in
      ``opt_state`` (``optax.inject_hyperparams``) for the same reason.
  """

  hparams: dict[str, jax.Array]


def stream_keys(seed: int) -> dict[str, jax.Array]:
  """The run's independent PRNG streams: ``init``, ``data``, ``train``, ``eval``, ``figures``."""
  root = jax.random.key(seed)
  return {name: jax.random.fold_in(root, i) for i, name in
          enumerate(("init", "data", "train", "eval", "figures"))}


def create_model(model_config: ml_collections.ConfigDict) -> vae.BetaVAE:
  """The β-VAE described by ``config.model``."""
  return vae.BetaVAE(latent_dim=model_config.latent_dim, channels=tuple(model_config.channels),
                     hidden=model_config.hidden, upsample=model_config.upsample)


def create_train_state(config: ml_collections.ConfigDict, model: vae.BetaVAE, key: jax.Array,
                       *, beta: float | jax.Array | None = None,
                       learning_rate: float | jax.Array | None = None) -> TrainState:
  """Initialises parameters (from ``key``) and Adam's state; step 0.

  ``beta`` and ``learning_rate`` default to ``config.objective.beta`` and
  ``config.optim.learning_rate``; pass arrays to ``vmap`` this function over a sweep
  (e.g. ``jax.vmap(lambda k, b: create_train_state(config, model, k, beta=b))``).
  """
  params_key, latent_key = jax.random.split(key)
  params = model.init({"params": params_key, "latent": latent_key},
                      jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
  lr = config.optim.learning_rate if learning_rate is None else learning_rate
  beta = config.objective.beta if beta is None else beta
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                           hparams={"beta": jnp.asarray(beta, jnp.float32)})


def to_unit_interval(images: jax.Array) -> jax.Array:
  """uint8 ``[...]`` 0..255 → float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def train_step(state: TrainState, images: jax.Array, key: jax.Array, *,
               likelihood: str = "bernoulli",
               gaussian_variance: float = 0.5) -> tuple[TrainState, dict[str, jax.Array]]:
  """One Adam step on the mean β-VAE loss of a batch.

  Pure and free of Python side effects: it can be jit-compiled and ``vmap``-ed over a
  leading run axis of ``state``, ``images`` and ``key``.

  Args:
    state: the train state (params, Adam state, ``hparams['beta']``).
    images: uint8 ``[B, 28, 28, 1]``.
    key: the step's PRNG key (reparameterisation noise).
    likelihood, gaussian_variance: see ``objectives.reconstruction_nll``.

  Returns:
    The new state and the batch means ``{'loss', 'rec', 'kl', 'nelbo'}`` (nats per image).
  """
  x = to_unit_interval(images)

  def loss_fn(params):
    logits, z_mean, z_logvar = state.apply_fn({"params": params}, x, rngs={"latent": key})
    terms = objectives.beta_vae_terms(logits, x, z_mean, z_logvar, state.hparams["beta"],
                                      likelihood, gaussian_variance)
    means = {k: v.mean() for k, v in terms.items()}
    return means["loss"], means

  grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads=grads), metrics


def eval_sums(state: TrainState, images: jax.Array, mask: jax.Array, key: jax.Array, *,
              likelihood: str = "bernoulli",
              gaussian_variance: float = 0.5) -> dict[str, jax.Array]:
  """Sums of the per-example metrics over the unmasked examples of a padded batch.

  Args:
    images: uint8 ``[B, 28, 28, 1]`` (padding rows arbitrary); mask: bool ``[B]``.
    key: the batch's PRNG key (one z sample per image).

  Returns:
    ``{'loss', 'rec', 'kl', 'nelbo', 'count'}``, float32 scalars (sums over images).
  """
  x = to_unit_interval(images)
  logits, z_mean, z_logvar = state.apply_fn({"params": state.params}, x, rngs={"latent": key})
  terms = objectives.beta_vae_terms(logits, x, z_mean, z_logvar, state.hparams["beta"],
                                    likelihood, gaussian_variance)
  sums = {k: jnp.sum(jnp.where(mask, v, 0.0)) for k, v in terms.items()}
  sums["count"] = mask.sum().astype(jnp.float32)
  return sums


def zero_sums() -> dict[str, jax.Array]:
  """Running sums of the train metrics over an epoch, plus ``count`` (steps)."""
  return {k: jnp.zeros((), jnp.float32) for k in (*METRICS, "count")}


def make_train_chunk(steps_per_epoch: int, batch_size: int, num_steps: int, likelihood: str,
                     gaussian_variance: float):
  """A compiled function running ``num_steps`` train steps with batches drawn on the device.

  ``chunk(state, sums, images, perm, train_key) -> (state, sums)``: step ``s`` trains on
  ``images[perm[(s % steps_per_epoch) * batch_size:][:batch_size]]`` with key
  ``fold_in(train_key, s)`` and adds its metrics to ``sums``. ``images`` is the whole
  uint8 split, resident on the device; ``perm`` the epoch's permutation of it.
  ``num_steps > 1`` runs a ``lax.scan`` (fewer dispatches: faster on GPUs, slower on
  XLA:CPU, see DESIGN.md).
  """
  step_fn = functools.partial(train_step, likelihood=likelihood,
                              gaussian_variance=gaussian_variance)

  def chunk(state, sums, images, perm, train_key):
    def one(carry, _):
      state, sums = carry
      start = (state.step % steps_per_epoch) * batch_size
      batch = jnp.take(images, jax.lax.dynamic_slice(perm, (start,), (batch_size,)), axis=0)
      state, metrics = step_fn(state, batch, jax.random.fold_in(train_key, state.step))
      sums = {k: sums[k] + (metrics[k] if k != "count" else 1.0) for k in sums}
      return (state, sums), None

    if num_steps == 1:
      return one((state, sums), None)[0]
    return jax.lax.scan(one, (state, sums), None, length=num_steps)[0]

  return jax.jit(chunk, donate_argnums=(0, 1))


class Evaluator:
  """Exact evaluation over a whole split: padded batches and a mask, no dropped remainder.

  The split is put on the device once, padded to a multiple of ``batch_size``. Each
  batch ``b`` uses the key ``fold_in(eval_key, b)``, so every evaluation of the run sees
  the same noise and numbers are comparable across epochs.
  """

  def __init__(self, images: np.ndarray, batch_size: int, eval_key: jax.Array,
               likelihood: str, gaussian_variance: float):
    n = len(images)
    batch_size = min(batch_size, n)
    num_batches = -(-n // batch_size)
    padded = np.zeros((num_batches * batch_size, *images.shape[1:]), np.uint8)
    padded[:n] = images
    mask = np.arange(num_batches * batch_size) < n
    self._images = jax.device_put(padded.reshape(num_batches, batch_size, *images.shape[1:]))
    self._mask = jax.device_put(mask.reshape(num_batches, batch_size))
    self._keys = [jax.random.fold_in(eval_key, b) for b in range(num_batches)]
    self._fn = jax.jit(functools.partial(eval_sums, likelihood=likelihood,
                                         gaussian_variance=gaussian_variance))

  def __call__(self, state: TrainState) -> dict[str, float]:
    """Means over the split: ``{'loss', 'rec', 'kl', 'nelbo'}`` in nats per image."""
    total = None
    for b, key in enumerate(self._keys):
      sums = self._fn(state, self._images[b], self._mask[b], key)
      total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    total = jax.device_get(total)
    return {k: float(total[k] / total["count"]) for k in METRICS}


def _flatten(config: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in config.items():
    name = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, name + "."))
    else:
      out[name] = v
  return out


def _check_resumable(workdir: str, config_dict: dict) -> None:
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


def describe(config: ml_collections.ConfigDict) -> str:
  """One line naming the experiment, for figure captions."""
  return (f"{config.data.name} {config.data.train_split}, β={config.objective.beta:g}, "
          f"latent_dim={config.model.latent_dim}, {config.objective.likelihood}, "
          f"seed={config.seed}")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains a β-VAE, evaluating every epoch, and writes the workdir contract (DESIGN.md).

  Resumes from the newest checkpoint in ``workdir`` if there is one. The config and the
  data are checked before the workdir is created.

  Returns:
    The summary (also ``WORKDIR/summary.json``): step, epoch and the last epoch's
    ``train/*`` and ``eval/*`` metrics.

  Raises:
    ConfigError, DataError: a bad config value or split (nothing written).
    DataFileNotFoundError, ChecksumError: missing or non-official data (nothing written).
    NonFiniteLossError: the loss became NaN/Inf; the last good checkpoint is kept.
  """
  validation.validate_config(config)
  train_ds, eval_ds = kdata.load_datasets(config.data)
  if config.train.batch_size > len(train_ds):
    raise validation.ConfigError(
        f"config.train.batch_size={config.train.batch_size} is not allowed: the train split "
        f"{config.data.train_split!r} has only {len(train_ds)} examples")
  config_dict = config.to_dict()
  _check_resumable(workdir, config_dict)

  os.makedirs(workdir, exist_ok=True)
  metric_writers.write_json(os.path.join(workdir, "config.json"), config_dict)
  logging.info("kjax: %s -> %s on %s", describe(config), workdir, jax.devices()[0].platform)

  keys = stream_keys(config.seed)
  model = create_model(config.model)
  state = create_train_state(config, model, keys["init"])
  sums = zero_sums()
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
  likelihood, variance = config.objective.likelihood, config.objective.gaussian_variance
  images = jax.device_put(train_ds.images)
  permutation = jax.jit(lambda key, epoch: jax.random.permutation(
      jax.random.fold_in(key, epoch), len(train_ds)))
  chunk_size = config.train.steps_per_call
  chunks = {n: make_train_chunk(steps_per_epoch, batch_size, n, likelihood, variance)
            for n in {chunk_size, 1}}
  evaluator = Evaluator(eval_ds.images, config.train.eval_batch_size, keys["eval"],
                        likelihood, variance)
  previews = _Previews(model, eval_ds, keys["figures"], config.model.latent_dim)

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
        chunks[n] = chunks[n].lower(state, sums, images, perm, keys["train"]).compile()
        timing["compile_s"] = time.perf_counter() - t0
        t_log = time.perf_counter()
      state, sums = chunks[n](state, sums, images, perm, keys["train"])
      step += n
      save_due = step // every != (step - n) // every
      if step % config.train.log_every_steps < n or step == epoch_end or save_due:
        # The only host sync between epochs; it also guards every checkpoint against NaN.
        loss = float(sums["loss"] / sums["count"])
        if not math.isfinite(loss):
          _stop_non_finite(ckpt, writer, step, epoch)
        now = time.perf_counter()
        rate = (step - step_log) * batch_size / max(now - t_log, 1e-9)
        if step_log > start_step:  # skip the window that includes the first call
          timing["steady_images_per_s"] = rate
        eta = (total_steps - step) * batch_size / max(rate, 1e-9)
        logging.info("epoch %d/%d step %d/%d train/loss %.2f | %.0f images/s | ETA %s",
                     epoch + 1, config.train.num_epochs, step, total_steps, loss, rate,
                     _hms(eta))
        t_log, step_log = now, step
      if step == epoch_end:
        train_means = jax.device_get(sums)
        metrics = {f"train/{k}": float(train_means[k] / train_means["count"]) for k in METRICS}
        metrics.update({f"eval/{k}": v for k, v in evaluator(state).items()})
        writer.write(step, epoch + 1, metrics)
        writer.write_images(step, previews(state.params))
        logging.info("epoch %d: %s", epoch + 1,
                     " ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
        sums = zero_sums()
      if save_due:
        ckpt.save(step, {"state": state, "sums": sums})
  ckpt.save(step, {"state": state, "sums": sums})
  ckpt.close()
  timing["wall_s"] = time.perf_counter() - t_start
  timing["steps_run"] = step - start_step

  summary = dict(writer.history[-1]) if writer.history else {"step": step, "epoch": 0}
  metric_writers.write_json(os.path.join(workdir, "summary.json"), summary)
  metric_writers.write_json(os.path.join(workdir, "timing.json"), timing)
  paths = previews.figures(state.params, writer.history, config,
                           os.path.join(workdir, "figures"), describe(config))
  paths.append(figures.plot_style_examples(
      os.path.join(workdir, "figures", "style_examples.png"), train_ds.images, train_ds.labels,
      train_ds.styles, train_ds.info,
      title=f"Thin vs thick strokes in {config.data.train_split} (per-class "
            f"{config.data.style_reduction} of pixels > {config.data.style_pixel_threshold})"))
  writer.close()
  logging.info("kjax: done; eval/nelbo %.2f nats/image; figures: %s",
               summary.get("eval/nelbo", float("nan")), ", ".join(map(os.path.basename, paths)))
  return summary


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


class _Previews:
  """Jitted encode/decode of a trained model for TensorBoard previews and figures."""

  def __init__(self, model: vae.BetaVAE, eval_ds: kdata.Dataset, key: jax.Array,
               latent_dim: int):
    self._model = model
    self._eval = eval_ds
    self._prior_z = jax.random.normal(key, (64, latent_dim))
    self._fixed = to_unit_interval(jnp.asarray(eval_ds.images[:16]))
    self._encode = jax.jit(lambda p, x: model.apply({"params": p}, x, method=vae.BetaVAE.encode)[0])
    self._decode = jax.jit(lambda p, z: jax.nn.sigmoid(
        model.apply({"params": p}, z, method=vae.BetaVAE.decode)))

  def __call__(self, params) -> dict[str, np.ndarray]:
    """TensorBoard images: fixed eval reconstructions and fixed prior samples (uint8 HW)."""
    recon = self._decode(params, self._encode(params, self._fixed))
    both = np.concatenate([np.asarray(self._fixed), np.asarray(recon)])
    return {"reconstructions": figures.tile(both, 16),
            "prior_samples": figures.tile(np.asarray(self._decode(params, self._prior_z)), 8)}

  def figures(self, params, history, config, fig_dir, caption) -> list[str]:
    """Writes the run's figures (``figures.make_vae_figures``); returns their paths."""
    return figures.make_vae_figures(
        fig_dir, encode=lambda x: np.asarray(self._encode(params, x)),
        decode=lambda z: np.asarray(self._decode(params, z)),
        eval_images=self._eval.images, eval_labels=self._eval.labels, info=self._eval.info,
        latent_dim=config.model.latent_dim, history=history,
        prior_z=np.asarray(self._prior_z), config=config, caption=caption)
