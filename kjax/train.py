"""The training loop shared by every kjax model: jit-compiled steps, checkpoints, metrics.

The model family (β-VAE, CVAE, CGAN) is a ``kjax.tasks.Task``; this module runs it, for one
run (``train``) or for a stack of runs that share one compiled program (``train_runs``: a
sweep's group, the runs on a leading axis of every array). It evaluates every epoch
(``kjax.evaluator``) but runs no final evaluation: ``kjax.experiment`` does that.

PRNG discipline (DESIGN.md, ``kjax.rng``): one root key from ``config.seed``; fixed streams
derived from it by ``fold_in``; the step's key is ``fold_in(train_key, step)`` inside the
compiled step and the epoch's data order is a permutation drawn from
``fold_in(data_key, epoch)``. A run is therefore a pure function of (config, data): a resumed
run, and the same run stacked with others, replays the same noise and batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import resource
import signal
import time
from typing import Any, Callable, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kjax import autotune
from kjax import checkpointing
from kjax import compile_cache
from kjax import errors
from kjax import data as kdata
from kjax import evaluator as kevaluator
from kjax import figures
from kjax import files
from kjax import frames as kframes
from kjax import metric_writers
from kjax import preemption
from kjax import rng
from kjax import sharding as ksharding
from kjax import tasks
from kjax import validation
from kjax import workdir as kworkdir
from kjax import workdir_config
from kjax.models import conv


def zero_sums(names: tuple[str, ...]) -> dict[str, jax.Array]:
  """Running sums of the train metrics ``names`` over an epoch, plus ``count`` (steps)."""
  return {k: jnp.zeros((), jnp.float32) for k in (*names, "count")}


# The learning rate of a network's optimiser → its name under train_steps/ (config.optim's).
_LR_NAMES = {"": "learning_rate", "generator": "g_learning_rate",
             "discriminator": "d_learning_rate"}


def learning_rates(state: Any) -> dict[str, jax.Array]:
  """The learning rates in ``state``'s optimisers, as logged under ``train_steps/``.

  Every optimiser is ``optax.inject_hyperparams`` (``kjax.tasks``), so its rate is the
  leaf ``opt_state.hyperparams['learning_rate']``: the constant ``config.optim`` rate, or
  a schedule's value at the last update (``optim.schedule='iwae'``, ``'cosine'``).

  Returns:
    ``{'learning_rate': float32 []}`` for one optimiser (β-VAE, CVAE, classifier);
    ``{'g_learning_rate', 'd_learning_rate'}`` for the CGAN's generator and discriminator
    (another owner ``x`` gives ``x_learning_rate``). Leaves keep a stacked state's leading
    run axis (``[R]``). The arrays are the state's own: no copy, no host sync.
  """
  rates = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    names = [getattr(k, "name", getattr(k, "key", None)) for k in path]
    if names[-3:] == ["opt_state", "hyperparams", "learning_rate"]:
      owner = ".".join(str(n) for n in names[:-3])
      rates[_LR_NAMES.get(owner, f"{owner.replace('.', '_')}_learning_rate")] = leaf
  return rates


BINARIZE_STREAM = 0x62696e  # folded into a step's key for its dynamic binarisation ("bin")


def binarize_batch(images: jax.Array, key: jax.Array) -> jax.Array:
  """Dynamic binarisation (Salakhutdinov & Murray 2008; Burda et al. 2015): each pixel of
  uint8 ``images`` becomes 255 with probability value / 255, else 0 (uint8, same shape)."""
  u = jax.random.uniform(key, images.shape)
  return jnp.where(u * 255.0 < images.astype(jnp.float32), 255, 0).astype(jnp.uint8)


def make_train_chunk(step_fn: Callable, steps_per_epoch: int, batch_size: int, num_steps: int,
                     sharing: str | None = None, binarize: bool = False, mesh=None):
  """A compiled function running ``num_steps`` train steps with batches drawn on the device.

  ``chunk(state, sums, data, perm, train_key) -> (state, sums)``: step ``s`` runs
  ``step_fn(state, batch, fold_in(train_key, s))`` on the rows
  ``perm[(s % steps_per_epoch) * batch_size:][:batch_size]`` of ``data`` (the whole split,
  resident on the device: ``{'images': uint8 [N, 28, 28, 1], 'labels': int32 [N],
  'styles': int32 [N]}``; ``perm`` the epoch's permutation, int32 ``[N]``) and adds its
  metrics to ``sums``. ``num_steps > 1`` runs a ``lax.scan`` (fewer dispatches: faster on
  GPUs and for small models, slower for the conv VAE on XLA:CPU; see DESIGN.md and
  ``benchmarks/``).

  With ``sharing`` (``'vmap'`` | ``'map'``, ``kjax.evaluator.over_runs``) ``state``, ``sums``,
  ``perm`` (``[R, N]``) and ``train_key`` (``[R]``) carry a leading axis of R runs and
  ``data`` is shared: R runs advance by ``num_steps`` in one compiled call, each with its
  own batches and noise.

  With ``binarize`` each batch's images are binarised afresh (``binarize_batch``, key
  ``fold_in(step key, BINARIZE_STREAM)``): ``config.data.binarize='dynamic'``.

  With a ``mesh`` (``kjax.sharding``) each batch is split over its ``data`` axis (the
  gradient's mean over the batch becomes an all-reduce) and a stack's runs over ``runs``;
  the arguments must already be laid out on it (``kjax.sharding.put``). The batch's rows,
  keys and order are those of the single-device program.
  """

  def chunk(state, sums, data, perm, train_key):
    def one(carry, _):
      state, sums = carry
      start = (state.step % steps_per_epoch) * batch_size
      rows = jax.lax.dynamic_slice(perm, (start,), (batch_size,))
      batch = ksharding.constrain_batch({k: jnp.take(v, rows, axis=0) for k, v in data.items()},
                                        mesh)
      key = jax.random.fold_in(train_key, state.step)
      if binarize:
        batch["images"] = binarize_batch(batch["images"],
                                         jax.random.fold_in(key, BINARIZE_STREAM))
      state, metrics = step_fn(state, batch, key)
      sums = {k: sums[k] + (metrics[k] if k != "count" else 1.0) for k in sums}
      return (state, sums), None

    if num_steps == 1:
      return one((state, sums), None)[0]
    return jax.lax.scan(one, (state, sums), None, length=num_steps)[0]

  if sharing is not None:
    chunk = kevaluator.over_runs(chunk, sharing, (0, 0, None, 0, 0), mesh)
  return jax.jit(chunk, donate_argnums=(0, 1))


def device_data(ds: kdata.Dataset, mesh=None) -> dict[str, jax.Array]:
  """A split on the device: ``{'images': uint8 [N, 28, 28, 1], 'labels', 'styles': int32 [N]}``;
  with a ``mesh``, replicated on every device of it (``kjax.sharding.put``)."""
  host = {"images": ds.images, "labels": ds.labels.astype(np.int32),
          "styles": ds.styles.astype(np.int32)}
  return jax.device_put(host) if mesh is None else ksharding.put(host, mesh)


def stack(trees: Sequence[Any]) -> Any:
  """Pytrees of one structure → one pytree whose leaves have a leading run axis ``[R, ...]``.

  The static fields (e.g. a ``TrainState``'s ``tx``) are the first tree's: per-run
  hyper-parameters live in arrays (``hparams``, ``optax.inject_hyperparams``), so the runs'
  optimisers differ only in leaves.
  """
  treedef = jax.tree.structure(trees[0])
  leaves = [jax.tree.leaves(t) for t in trees]
  return jax.tree.unflatten(treedef, [jnp.stack(xs) for xs in zip(*leaves)])


def unstack(tree: Any, r: int) -> Any:
  """Run ``r`` of a ``stack``ed pytree."""
  return jax.tree.map(lambda a: a[r], tree)


@dataclasses.dataclass
class TrainedRun:
  """A finished run: its config, workdir, task, final state, splits, ``summary.json`` and
  ``timing.json``."""

  config: ml_collections.ConfigDict
  workdir: str
  task: tasks.Task
  state: Any
  train_ds: kdata.Dataset
  eval_ds: kdata.Dataset
  summary: dict[str, Any]
  timing: dict[str, Any]


def prepare(config: ml_collections.ConfigDict, workdir: str,
            datasets: tuple[kdata.Dataset, kdata.Dataset] | None = None,
            optim_may_change: bool = True
            ) -> tuple[tasks.Task, kdata.Dataset, kdata.Dataset]:
  """Checks ``config`` and its data before anything is written; loads the splits unless
  ``datasets`` are given.

  ``optim_may_change``: a run with a checkpoint may continue with other ``optim.*``
  settings (``kjax.workdir.check_resumable``); a sweep passes False.

  Returns:
    ``(task, train_ds, eval_ds)``.

  Raises:
    ConfigError, DataError: a bad config value or split, a ``config.mesh`` that does not
      fit the devices, or a workdir whose run (the config its newest checkpoint recorded,
      else its ``config.json``) belongs to another experiment.
    DataFileNotFoundError, ChecksumError: missing or non-official data.
  """
  validation.validate_config(config)
  kworkdir.check_writable(workdir)
  mesh = config.get("mesh") or {}
  ksharding.mesh_shape(jax.device_count(), 1, mesh.get("runs", 0), mesh.get("data", 0))
  task = tasks.get_task(config)
  train_ds, eval_ds = datasets or kdata.load_datasets(config.data)
  if config.train.batch_size > len(train_ds):
    raise validation.ConfigError(
        f"config.train.batch_size={config.train.batch_size} is not allowed: the train split "
        f"{config.data.train_split!r} has only {len(train_ds)} examples")
  kworkdir.check_resumable(workdir, config.to_dict(), optim_may_change=optim_may_change)
  if ksharding.is_writer():
    kworkdir.check_unlocked(workdir)  # the lock is taken once the data has loaded
  task.num_train_examples = len(train_ds)
  return task, train_ds, eval_ds


def train(config: ml_collections.ConfigDict, workdir: str,
          progress: dict[str, Any] | None = None, keep_locked: bool = False) -> TrainedRun:
  """Trains the model of ``config.model.name``, evaluating every epoch, and writes the
  workdir contract (DESIGN.md): ``config.json``, ``metrics.jsonl``, ``summary.json``,
  ``timing.json``, ``checkpoints/``, ``figures/``, ``frames/``, TensorBoard events.

  Resumes from the newest checkpoint in ``workdir`` if there is one. The config and the
  data are checked before the workdir is created.

  TensorBoard tags (events in ``workdir``; ``kjax.metric_writers``):

  * every epoch (as ``metrics.jsonl``): ``train/<metric>``, the epoch's mean of each
    train metric, and ``eval/<metric>``, the evaluation split's mean (nats per image for
    ``loss``, ``rec``, ``kl``, ``nelbo``); the ``samples`` (and task-specific) previews.
  * every log step (``config.train.log_every_steps``, every epoch end and every
    checkpoint step): ``train_steps/<metric>``, the mean of each train metric over the
    steps since the previous log step; ``train_steps/learning_rate`` (the CGAN:
    ``train_steps/g_learning_rate`` and ``train_steps/d_learning_rate``), the rate of the
    step's update (``learning_rates``); ``perf/images_per_s``, the training throughput of
    the whole program since the previous log step (images/s, all runs of a stack
    together, evaluation excluded; the rate of the progress line).
  * after the evaluation (``kjax.experiment``): ``evaluation/<metric>`` and the HPARAMS
    session (``kjax.metric_writers.log_evaluation``).

  ``progress`` (optional, as ``train_runs``'s): ``{'evaluation_s': fn}`` adds the
  evaluation still to come to the progress line's ETA. ``keep_locked``: as ``train_runs``'s.

  Raises:
    ConfigError, DataError, DataFileNotFoundError, ChecksumError: see ``prepare`` (nothing
      written).
    NonFiniteLossError: a loss became NaN/Inf; the last good checkpoint is kept.
    Interrupted: SIGTERM/SIGINT; a checkpoint was saved at the step reached
      (``kjax.preemption``).
    WorkdirLockedError: another process trains or evaluates ``workdir``.
    WriteError: a checkpoint or file could not be written (full disk, ...).
  """
  return train_runs([config], [workdir], progress=progress, keep_locked=keep_locked)[0]


def _restore(ckpts, states, sums):
  """Restores every run at the newest step all of them have kept and can restore
  (``kjax.checkpointing.restore_newest``: a corrupt newest checkpoint, or one whose arrays
  fail their checksums, is moved aside and an older one used).

  Returns:
    ``(states, sums, step, records)``: ``records`` per run is the checkpoint's ``records``
    item (None for a checkpoint saved by an older kjax); ``(states, sums, 0, [None, ...])``
    unchanged when there is no checkpoint.
  """
  found = checkpointing.restore_newest(
      ckpts, [{"state": s, "sums": m} for s, m in zip(states, sums)])
  if found is None:
    return states, sums, 0, [None] * len(states)
  step, restored = found
  return ([r["state"] for r in restored], [r["sums"] for r in restored], step,
          [r.get(checkpointing.RECORDS) for r in restored])


def optim_changes(recorded: dict[str, Any], config: dict[str, Any]) -> dict[str, dict]:
  """The ``optim.*`` settings of ``config`` that differ from the ``recorded`` config of a
  checkpoint: ``{'optim.learning_rate': {'from': 0.001, 'to': 0.0001}}`` (settings the
  recorded config lacks, added to kjax later, are not compared)."""
  old = kworkdir.flatten(json.loads(json.dumps(recorded)))
  new = kworkdir.flatten(json.loads(json.dumps(config)))
  return {k: {"from": old[k], "to": new.get(k)} for k in sorted(old)
          if k.startswith("optim.") and old[k] != new.get(k)}


def with_optimizer_settings(restored: Any, fresh: Any) -> Any:
  """``restored`` with every ``optax.inject_hyperparams`` value (the leaves under an
  ``opt_state``'s ``hyperparams``: learning rates, Adam's b1, b2, eps) taken from ``fresh``,
  the state a changed ``config.optim`` builds: the moments and step counts are kept, the
  new settings apply from the next update. Both trees have one structure."""
  def pick(path, old, new):
    names = [getattr(k, "name", getattr(k, "key", None)) for k in path]
    return new if "hyperparams" in names else old
  return jax.tree_util.tree_map_with_path(pick, restored, fresh)


def _all_finite(tree: Any) -> bool:
  """Whether every floating-point value of ``tree`` is finite (a collective in a
  multi-process job: ``kjax.sharding.to_host``)."""
  floats = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  return all(np.isfinite(a).all() for a in ksharding.to_host(floats))


def lower_learning_rate_flags(config: ml_collections.ConfigDict) -> str:
  """The flags that continue a diverged run with a tenth of its learning rate(s), e.g.
  ``--config.optim.learning_rate=0.0001`` (the CGAN's ``g_``/``d_learning_rate`` too when
  set)."""
  o = config.optim
  keys = ["learning_rate"] + [k for k in ("g_learning_rate", "d_learning_rate")
                              if o.get(k) is not None]
  return " ".join(f"--config.optim.{k}={o[k] / 10:g}" for k in keys)


def train_runs(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
               sharing: str | None = None,
               datasets: tuple[kdata.Dataset, kdata.Dataset] | None = None,
               progress: dict[str, Any] | None = None,
               keep_locked: bool = False) -> list[TrainedRun]:
  """Trains R runs in one compiled program: ``train`` for each, stacked on a run axis.

  The runs must share every array shape and the code of the step (a sweep's group,
  ``kjax.sweep``): same model, data and schedule, different seeds and per-run
  hyper-parameters (β, learning rates, …, carried as arrays in the state). Each run keeps
  its own PRNG streams, data order, checkpoints and workdir contract, so its workdir is
  that of the same run trained alone. Floating-point order may differ from the solo run
  where XLA compiles the stacked step differently.

  Every device of every process works on the program (``kjax.sharding``: ``vmap``ped runs
  over the mesh's ``runs`` axis, padded to a multiple of it; each batch over ``data``).
  In a multi-process job every process calls this with the same arguments; only process 0
  writes files (``kjax.sharding.is_writer``) and checkpoints are saved collectively.

  Args:
    configs, workdirs: one per run.
    sharing: None for one run; ``'vmap'`` or ``'map'`` (``kjax.evaluator.over_runs``).
    datasets: ``(train_ds, eval_ds)`` already loaded (shared by every run), or None.
    keep_locked: keep the workdirs' locks (``kjax.workdir.lock``, taken once the data
      has loaded) after returning, for the evaluation that follows; the caller unlocks.
      Otherwise, and on any error, they are released on return.
    progress: for a sweep's progress line: ``{'runs_done', 'runs_total',
      'images_after'}`` (images of the groups still to come, for the ETA); and/or
      ``{'evaluation_s': fn}``, ``fn(images_per_s, num_train, num_eval) -> seconds``, an
      estimate of the evaluation after training, added to the ETA and shown apart.

  Returns:
    One ``TrainedRun`` per run, in order.

  Raises:
    As ``train``; errors name the run's workdir.
  """
  if sharing is None and len(configs) != 1:
    raise ValueError(f"{len(configs)} runs need sharing='vmap' or 'map'")
  compile_cache.enable()
  try:
    runs = _train_runs(configs, workdirs, sharing, datasets, progress)
  except BaseException:
    keep_locked = False
    raise
  finally:
    if not keep_locked:
      for w in workdirs:
        kworkdir.unlock(w)
  return runs


def _train_runs(configs, workdirs, sharing, datasets, progress):
  prepared = [prepare(c, w, datasets) for c, w in zip(configs, workdirs)]
  rep, train_ds, eval_ds = prepared[0]
  run_tasks = [p[0] for p in prepared]
  config = configs[0]
  num_runs = len(configs)
  mesh = ksharding.make_mesh(num_runs if sharing == "vmap" else 1, config.get("mesh"))
  writer = ksharding.is_writer()
  for w in workdirs:
    if writer:
      kworkdir.lock(w)  # released by train_runs (or its caller: keep_locked)
    os.makedirs(w, exist_ok=True)
  logging.info("kjax: %s -> %s on %s (mesh %s, %d process(es))",
               "; ".join(t.describe() for t in run_tasks), ", ".join(workdirs),
               jax.devices()[0].platform, dict(mesh.shape), jax.process_count())

  keys = [rng.stream_keys(c.seed) for c in configs]
  fresh = [t.fresh_state(k["init"]) for t, k in zip(run_tasks, keys)]
  sums = [zero_sums(rep.train_metrics) for _ in configs]
  ckpts = [checkpointing.Checkpointer(os.path.join(w, "checkpoints"), c.train.keep_checkpoints)
           for c, w in zip(configs, workdirs)]
  states, sums, start_step, records = _restore(ckpts, fresh, sums)
  batch_size = config.train.batch_size
  steps_per_epoch = len(train_ds) // batch_size
  total_steps = steps_per_epoch * config.train.num_epochs
  # What each checkpoint records beside its arrays (kjax.checkpointing.RECORDS).
  config_dicts = [json.loads(json.dumps(c.to_dict())) for c in configs]
  config_histories = [list((rec or {}).get("config_history", [])) for rec in records]
  finished = start_step >= total_steps > 0
  for r, (c, w, rec) in enumerate(zip(configs, workdirs, records)):
    changes = optim_changes(rec["config"], config_dicts[r]) if rec else {}
    if not changes:
      continue
    named = ", ".join(f"config.{k}={v['to']!r} (was {v['from']!r})" for k, v in changes.items())
    if finished:
      # Nothing left to train with them: the run keeps the settings it finished with.
      config_dicts[r]["optim"] = rec["config"]["optim"]
      logging.warning("kjax: %s is already finished at step %d; %s would train no step and "
                      "is not used (raise config.train.num_epochs to continue with it)", w,
                      start_step, named)
      continue
    # Continuing a run with a new step size (e.g. after a non-finite loss): the optimiser
    # state is kept, its settings come from the config; the change is recorded.
    states[r] = with_optimizer_settings(states[r], fresh[r])
    config_histories[r].append({"step": int(start_step), "changes": changes})
    logging.warning("kjax: %s continues from step %d with %s (recorded in %s)", w, start_step,
                    named, HISTORY_FILE)
    for newer in [s for s in ckpts[r].all_steps() if s > start_step]:
      # A stack's run saved past the common step with the old settings: not this run now.
      logging.warning("kjax: %s: the checkpoint at step %d was trained with the previous "
                      "settings; moved to %s", w, newer, ckpts[r].set_aside(newer))
  # A restored state that holds NaN/Inf: the checkpoint, not the step size, is the suspect.
  restored_finite = [_all_finite(s) if start_step else True for s in states]
  if writer:
    for w, d, history, rec in zip(workdirs, config_dicts, config_histories, records):
      _write_config(w, d, start_step)
      path = os.path.join(w, HISTORY_FILE)
      if history:
        files.update_json(path, history)
      elif rec is not None and os.path.exists(path):
        os.remove(path)  # resumed from a checkpoint before the changes it lists
  if finished:
    logging.info("kjax: %s already finished at step %d: nothing to train",
                 ", ".join(workdirs), start_step)
  elif start_step:
    logging.info("kjax: resumed from the checkpoint at step %d", start_step)
  writers = [metric_writers.MetricWriter(w, resume_step=start_step, enabled=writer,
                                         history=(rec or {}).get("history"),
                                         tensorboard=not finished)
             for w, rec in zip(workdirs, records)]

  def run_state(tree, r):
    return tree if sharing is None else unstack(tree, r)

  def save_all(step, state, sum_tree):
    """Starts every run's checkpoint of ``step``: its state, the epoch's running sums and
    its records (``kjax.checkpointing.RECORDS``: config, history, config_history)."""
    for r, c in enumerate(ckpts):  # in a job of processes, one at a time (Checkpointer)
      c.save(step, {"state": run_state(state, r), "sums": run_state(sum_tree, r)},
             {"config": config_dicts[r], "history": writers[r].history,
              "config_history": config_histories[r]})

  run_spec = ksharding.P() if sharing is None else ksharding.P(ksharding.RUNS)

  def on_mesh(per_run):
    """One value per run → the program's input on the mesh (a padded stack for a sweep)."""
    if sharing is None:
      return ksharding.put(per_run[0], mesh)
    return ksharding.put(stack(ksharding.pad_runs(per_run, mesh)), mesh, run_spec)

  state, sum_tree = on_mesh(states), on_mesh(sums)
  train_key = on_mesh([k["train"] for k in keys])

  data = device_data(train_ds, mesh)
  # The epoch's data order, drawn on the mesh where the chunk reads it (no host copy).
  def permutation(key, epoch):
    return jax.random.permutation(jax.random.fold_in(key, epoch), len(train_ds))

  permutation = jax.jit(permutation if sharing is None else jax.vmap(permutation, (0, None)),
                        out_shardings=ksharding.NamedSharding(mesh, run_spec))
  data_key = on_mesh([k["data"] for k in keys])
  convolutional = autotune.has_convolutions(config.model)
  conv_impl = config.model.get("conv_impl", "auto")
  chunk_size = autotune.steps_per_call(config.train.steps_per_call, steps_per_epoch,
                                       convolutional=convolutional)
  # Looked up through the class, so that a test can patch the step.
  step_fn = functools.partial(type(rep).train_step, rep)
  dynamic = config.data.get("binarize", "none") == "dynamic"
  chunks = {n: make_train_chunk(step_fn, steps_per_epoch, batch_size, n, sharing, dynamic, mesh)
            for n in {chunk_size, 1}}
  eval_keys = [k["eval"] for k in keys]
  eval_key = eval_keys[0] if sharing is None else jnp.stack(ksharding.pad_runs(eval_keys, mesh))
  evaluator = kevaluator.Evaluator(rep, eval_ds, config.train.eval_batch_size, eval_key, sharing,
                                   mesh, num_runs)
  for t, k in zip(run_tasks, keys):
    t.start_figures(train_ds, eval_ds, k["figures"])
  progress_every = config.figures.get("progress_every_epochs", 0)
  images_per_step = batch_size * num_runs

  def epoch_perm(epoch):
    return permutation(data_key, epoch)

  def stop_non_finite(r, step, epoch):
    latest = ckpts[r].latest_step()
    for c in ckpts:
      c.close()
    for w in writers:
      w.close()
    w = workdirs[r]
    in_sweep = bool(progress and "runs_total" in progress)
    if not finite_since_restore and (not restored_finite[r] or records[r] is None):
      # Right after restoring a state that holds NaN/Inf, or one without checksums (saved
      # by an older kjax): the checkpoint, not the step size, is the suspect.
      where = os.path.join(w, "checkpoints", str(start_step))
      why = ("it holds non-finite values" if not restored_finite[r] else
             "it has no checksums to verify it")
      older = [s for s in ckpts[r].all_steps() if s < start_step]
      then = (f"resume from the one at step {older[-1]}" if older else "train afresh")
      message = (
          f"the training loss of {w} became non-finite by step {step}, within "
          f"{step - start_step} step(s) of resuming: the checkpoint at step {start_step} may "
          f"be corrupt ({why}); move {where} into "
          f"{os.path.join(w, checkpointing.CORRUPT_DIR)}/ and run the same command to {then}")
    elif in_sweep:
      message = (f"the training loss of {w} became non-finite by step {step} (epoch "
                 f"{epoch + 1}); the last good checkpoint (step {latest}) is kept")
    elif latest is None:
      message = (f"the training loss of {w} became non-finite by step {step} (epoch "
                 f"{epoch + 1}), before any checkpoint; run the same command with "
                 f"{lower_learning_rate_flags(configs[r])} to start again with a smaller step")
    else:
      message = (f"the training loss of {w} became non-finite by step {step} (epoch "
                 f"{epoch + 1}); the last good checkpoint (step {latest}) is kept; to continue "
                 f"from it with a smaller step, run the same command with "
                 f"{lower_learning_rate_flags(configs[r])}")
    raise errors.NonFiniteLossError(message, w, step, epoch + 1, latest)

  def stop_on_signal(signum, step, epoch):
    """After the checkpoint of ``step`` was started: wait for it, flush the logs, raise."""
    for c in ckpts:
      c.close()
    for w in writers:
      w.close()
    runs = workdirs[0] if num_runs == 1 else f"{num_runs} runs ({', '.join(workdirs)})"
    raise errors.Interrupted(
        f"stopped by {signal.Signals(signum).name} at step {step}/{total_steps} (epoch "
        f"{epoch + 1}/{config.train.num_epochs}); checkpoint saved in {runs}; run the same "
        "command again to resume from it", preemption.exit_code(signum))

  def host_copy(tree):
    """Device → host numpy with a leading run axis (``[1]`` for a single run)."""
    host = ksharding.to_host(tree)
    return host if sharing is not None else jax.tree.map(lambda a: np.asarray(a)[None], host)

  def window_means(host, since=None):
    """Per-run means of the train metrics over the steps between the host sums ``since``
    (None: the epoch's start) and ``host``: ``(sum - sum_since) / (count - count_since)``."""
    if since is None:
      since = {k: np.zeros_like(v) for k, v in host.items()}
    means = []
    for r in range(num_runs):
      n = float(host["count"][r]) - float(since["count"][r])
      means.append({k: (float(host[k][r]) - float(since[k][r])) / n if n > 0 else math.nan
                    for k in rep.train_metrics})
    return means

  def epoch_means(tree, state):
    """The running sums → ``(per-run epoch means, host sums, host learning rates)``; one
    host sync for all three (``learning_rates``' leaves ride along with the sums)."""
    host, lrs = host_copy((tree, learning_rates(state)))
    return window_means(host), host, lrs

  timing = {"compile_s": None, "steady_images_per_s": None, "runs_in_program": num_runs,
            "sharing": sharing or "single",
            "mesh": dict(mesh.shape), "processes": jax.process_count(),
            "choices": {"platform": autotune.platform(),
                        "device": jax.devices()[0].device_kind,
                        "steps_per_call": chunk_size,
                        # How convolutions run; None for the MLP models.
                        "conv_impl": conv.resolve_impl(conv_impl) if convolutional else None,
                        "batch_chunks": conv.batch_chunks(conv_impl) if convolutional else None}}
  step = start_step
  t_log, step_log = time.perf_counter(), step
  # The host sums at the previous log step (train_steps/ means are over the steps since):
  # the restored ones after a resume (every checkpoint step is a log step), None (zero) at
  # the start of an epoch.
  sums_logged = ksharding.to_host(stack(sums)) if start_step % steps_per_epoch else None
  t_start = t_log
  multiprocess = jax.process_count() > 1
  finite_since_restore = not start_step  # a finite loss seen since the restore
  with preemption.StopSignals() as stops, _finish_saves_on_error(ckpts, writers):
    while step < total_steps:
      epoch = step // steps_per_epoch
      perm = epoch_perm(epoch)
      epoch_end = (epoch + 1) * steps_per_epoch
      while step < epoch_end:
        n = chunk_size if epoch_end - step >= chunk_size else 1
        if timing["compile_s"] is None:
          t0 = time.perf_counter()
          chunks[n] = chunks[n].lower(state, sum_tree, data, perm, train_key).compile()
          timing["compile_s"] = time.perf_counter() - t0
          t_log = t_first = time.perf_counter()
        state, sum_tree = ksharding.settle(chunks[n](state, sum_tree, data, perm, train_key), mesh)
        step += n
        save_due = step // config.train.checkpoint_every_steps != (
            step - n) // config.train.checkpoint_every_steps
        sync_point = step % config.train.log_every_steps < n or step == epoch_end or save_due
        # SIGTERM/SIGINT: stop here (every process of a job at the same sync point).
        if multiprocess:
          stop = stops.agreed(True) if sync_point else None
        else:
          stop = stops.agreed(False)
        if sync_point or stop:
          # The only host sync between epochs; it also guards every checkpoint against NaN.
          means, host_sums, host_lrs = epoch_means(sum_tree, state)
          for r, m in enumerate(means):
            if not all(math.isfinite(v) for v in m.values()):
              stop_non_finite(r, step, epoch)
          finite_since_restore = True
          window = window_means(host_sums, sums_logged)
          sums_logged = host_sums
          now = time.perf_counter()
          rate = (step - step_log) * images_per_step / max(now - t_log, 1e-9)
          if step_log > start_step:  # skip the window that includes the first call
            timing["steady_images_per_s"] = rate
          # The ETA uses the mean rate since the first call, epoch-end work included.
          overall = (step - start_step) * images_per_step / max(now - t_first, 1e-9)
          images_left = (total_steps - step) * images_per_step + (progress or {}).get(
              "images_after", 0)
          prefix = ""
          if progress and "runs_total" in progress:
            prefix = (f"sweep: {progress['runs_done']}/{progress['runs_total']} runs done, "
                      f"{num_runs} training | ")
          eta_s = images_left / max(overall, 1e-9)
          eta = _hms(eta_s)
          if progress and "evaluation_s" in progress:
            evaluation_s = progress["evaluation_s"](overall, len(train_ds), len(eval_ds))
            if evaluation_s:
              eta = (f"{_hms(eta_s + evaluation_s)} (training {eta}, then evaluation "
                     f"≈ {_hms(evaluation_s)})")
          logging.info("%sepoch %d/%d step %d/%d %s | %.0f images/s | ETA %s", prefix,
                       epoch + 1, config.train.num_epochs, step, total_steps,
                       " ".join(f"train/{k} {means[0][k]:.3f}" for k in rep.log_metrics),
                       rate, eta)
          for r in range(num_runs):
            writers[r].write_scalars(step, {
                **{f"train_steps/{k}": v for k, v in window[r].items()},
                **{f"train_steps/{k}": float(v[r]) for k, v in host_lrs.items()},
                "perf/images_per_s": rate})
          t_log, step_log = now, step
        if step == epoch_end:
          train_means = means  # logged above: every epoch end is a log step
          evals = evaluator(state)
          evals = [evals] if sharing is None else evals
          local_state = ksharding.local(state)  # figures are made by process 0 alone
          for r, (task, w) in enumerate(zip(run_tasks, workdirs)):
            metrics = {f"train/{k}": v for k, v in train_means[r].items()}
            metrics.update({f"eval/{k}": v for k, v in evals[r].items()})
            writers[r].write(step, epoch + 1, metrics)
            logging.info("epoch %d%s: %s", epoch + 1, f" ({w})" if num_runs > 1 else "",
                         " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
            if not writer:
              continue
            s = run_state(local_state, r)
            previews = task.previews(s)
            writers[r].write_images(step, previews)
            kframes.save_frames(os.path.join(w, kframes.FRAMES_DIR), epoch + 1, previews)
            if progress_every and ((epoch + 1) % progress_every == 0 or epoch == 0
                                   or step == total_steps):
              os.makedirs(os.path.join(w, "figures", "progress"), exist_ok=True)
              task.progress_figure(s, epoch + 1, os.path.join(
                  w, "figures", "progress", f"epoch_{epoch + 1:04d}.png"))
          sum_tree = jax.tree.map(jnp.zeros_like, sum_tree)
          sums_logged = None
        if save_due or stop:
          save_all(step, state, sum_tree)
        if stop:
          stop_on_signal(stop, step, epoch)
        if step == epoch_end:
          t_log = time.perf_counter()  # the shown rate is of training steps only
    # A signal during the last epoch's end (its evaluation, previews): training is done;
    # stop before the final figures and evaluation, which the next launch then does.
    last = stops.agreed(multiprocess)
    if last:
      save_all(step, state, sum_tree)
      stop_on_signal(last, step, step // steps_per_epoch - 1)
  save_all(step, state, sum_tree)
  for c in ckpts:
    c.close()
  timing["wall_s"] = time.perf_counter() - t_start
  timing["steps_run"] = step - start_step

  results = []
  local_state = ksharding.local(state)
  for r, (c, w, task) in enumerate(zip(configs, workdirs, run_tasks)):
    s = run_state(local_state, r)
    results.append(TrainedRun(c, w, task, s, train_ds, eval_ds,
                              *_finish(c, w, task, s, writers[r], timing, train_ds, eval_ds, step)))
  return results


HISTORY_FILE = workdir_config.HISTORY_FILE  # the optim.* changes made on resume
FIGURES_MANIFEST = "final_figures.json"  # in WORKDIR/figures: the final figures and step


def _write_config(workdir: str, config: dict[str, Any], step: int) -> None:
  """``WORKDIR/config.json`` from ``config`` (a dict; unchanged bytes when equal). A run
  with a checkpoint whose copy was missing or damaged gets it back (one line): the
  checkpoint's own config was the one compared (``kjax.workdir.check_resumable``)."""
  path = os.path.join(workdir, "config.json")
  damage = workdir_config.config_json_damage(workdir)
  files.update_json(path, config)
  if damage and step:
    logging.warning("kjax: rebuilt %s (it was %s); the config was checked against the one "
                    "the checkpoint at step %d recorded", path, damage, step)


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


def _finish(config, workdir, task, state, writer, timing, train_ds, eval_ds, step):
  """``summary.json``, ``timing.json`` and the final figures of one run (process 0 only);
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
  os.makedirs(fig_dir, exist_ok=True)
  t0 = time.perf_counter()
  paths = None if timing.get("steps_run") else _final_figures_done(fig_dir, step)
  if paths is None:
    paths = task.final_figures(state, writer.history, fig_dir, train_ds, eval_ds)
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


@contextlib.contextmanager
def _finish_saves_on_error(ckpts, writers):
  """On an exception out of the training loop (a full disk, a bug, a stop), waits for the
  checkpoints still being written and flushes the logs before it propagates, so that every
  checkpoint started is complete or absent (errors while closing are logged, not raised:
  the first error is the one to report). Not in a multi-process job: there closing is a
  collective, and after a failed collective (another process died) it would wait for the
  dead process and abort; orbax's commit-by-rename keeps the last complete checkpoint."""
  try:
    yield
  except BaseException:
    if jax.process_count() > 1:
      raise
    for closer in (*ckpts, *writers):
      try:
        closer.close()
      except Exception as e:  # noqa: BLE001
        logging.warning("kjax: while stopping: %s",
                        checkpointing.first_line(e) or type(e).__name__)
    raise


def peak_rss_mib() -> float:
  """The process's peak resident set size so far, MiB (Linux ``ru_maxrss`` is in KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hms(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
