"""The compiled side of training: chunks of train steps, the data and keys on the mesh.

``make_train_chunk`` is the program (also timed by ``benchmarks/``); ``Program`` holds one
job's arrays on its mesh (the runs' states, running sums and keys, stacked on a run axis
for a sweep's group) and runs the chunks, yielding a ``Tick`` after each.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from kjax import autotune
from kjax import data as kdata
from kjax import evaluator as kevaluator
from kjax import preemption
from kjax import sharding as ksharding
from kjax.models import conv


def zero_sums(names: tuple[str, ...]) -> dict[str, jax.Array]:
  """Running sums of the train metrics ``names`` over an epoch, plus ``count`` (steps)."""
  return {k: jnp.zeros((), jnp.float32) for k in (*names, "count")}


def learning_rates(state: Any, names: dict[str, str] | None = None) -> dict[str, jax.Array]:
  """The learning rates in ``state``'s optimisers, as logged under ``train_steps/``.

  Every optimiser is ``optax.inject_hyperparams`` (``kjax.tasks``), so its rate is the
  leaf ``opt_state.hyperparams['learning_rate']``: the constant ``config.optim`` rate, or
  a schedule's value at the last update (``optim.schedule='iwae'``, ``'cosine'``).

  Args:
    state: a train state (a stack's, with a leading run axis, too).
    names: the family's names of its optimisers' rates (``Task.optimizer_names``: the path
      of an optimiser's owner in the state → its name); default ``{'': 'learning_rate'}``
      (one optimiser at the top of the state). An owner ``x`` not named gives
      ``x_learning_rate``.

  Returns:
    name → float32 ``[]`` leaf, e.g. ``{'learning_rate'}`` for the β-VAE, CVAE and
    classifier, ``{'g_learning_rate', 'd_learning_rate'}`` for the CGAN. Leaves keep a
    stacked state's leading run axis (``[R]``). The arrays are the state's own: no copy, no
    host sync.
  """
  names = {"": "learning_rate"} if names is None else names
  rates = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    parts = [getattr(k, "name", getattr(k, "key", None)) for k in path]
    if parts[-3:] == ["opt_state", "hyperparams", "learning_rate"]:
      owner = ".".join(str(n) for n in parts[:-3])
      rates[names.get(owner, f"{owner.replace('.', '_')}_learning_rate")] = leaf
  return rates


BINARIZE_STREAM = 0x62696e  # folded into a step's key for its dynamic binarisation ("bin")


def binarize_batch(images: jax.Array, key: jax.Array) -> jax.Array:
  """Dynamic binarisation (Salakhutdinov & Murray 2008; Burda et al. 2015): each pixel of
  uint8 ``images`` becomes 255 with probability value / 255, else 0 (uint8, same shape)."""
  u = jax.random.uniform(key, images.shape)
  return jnp.where(u * 255.0 < images.astype(jnp.float32), 255, 0).astype(jnp.uint8)


def make_train_chunk(step_fn: Callable, steps_per_epoch: int, batch_size: int, num_steps: int,
                     sharing: str | None = None, binarize: bool = False, mesh=None,
                     marks: bool = False, lr_names: dict[str, str] | None = None):
  """A compiled function running ``num_steps`` train steps with batches drawn on the device.

  ``chunk(state, sums, data, perm, train_key) -> (state, sums)``: step ``s`` runs
  ``step_fn(state, batch, fold_in(train_key, s))`` on the rows
  ``perm[(s % steps_per_epoch) * batch_size:][:batch_size]`` of ``data`` (the whole split,
  resident on the device: ``{'images': uint8 [N, H, W, C], 'labels': int32 [N],
  'styles': int32 [N]}``; ``perm`` the epoch's permutation, int32 ``[N]``) and adds its
  metrics to ``sums``. ``num_steps > 1`` runs a ``lax.scan`` (fewer dispatches: faster on
  GPUs and for small models, slower for the conv VAE on XLA:CPU; see DESIGN.md and
  ``benchmarks/``).

  With ``marks`` it returns ``(state, sums, marks)`` too: ``marks`` holds, after each of
  the chunk's steps, the running ``sums`` and the ``learning_rates`` (named by
  ``lr_names``, the family's ``Task.optimizer_names``) of the update
  (float32 leaves ``[num_steps]``), so that the loop logs every log step inside a chunk
  from one host copy (``kjax.train.actions.LogSteps``).

  With ``sharing`` (``'vmap'`` | ``'map'``, ``kjax.evaluator.over_runs``) ``state``, ``sums``,
  ``perm`` (``[R, N]``) and ``train_key`` (``[R]``) carry a leading axis of R runs and
  ``data`` is shared: R runs advance by ``num_steps`` in one compiled call, each with its
  own batches and noise (``marks``' leaves are ``[R, num_steps]``).

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
      mark = {"sums": sums, "learning_rates": learning_rates(state, lr_names)} if marks else None
      return (state, sums), mark

    if num_steps == 1:
      (state, sums), mark = one((state, sums), None)
      mark = jax.tree.map(lambda a: a[None], mark)
    else:
      (state, sums), mark = jax.lax.scan(one, (state, sums), None, length=num_steps)
    return (state, sums, mark) if marks else (state, sums)

  if sharing is not None:
    chunk = kevaluator.over_runs(chunk, sharing, (0, 0, None, 0, 0), mesh)
  return jax.jit(chunk, donate_argnums=(0, 1))


def device_data(ds: kdata.Dataset, mesh=None) -> dict[str, jax.Array]:
  """A split on the device: ``{'images': uint8 [N, H, W, C], 'labels', 'styles': int32 [N]}``;
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


_unstack_program = jax.jit(unstack, static_argnums=1)


@dataclasses.dataclass
class Tick:
  """What the loop hands to every action after a chunk of ``n`` steps (``kjax.train.actions``).

  Attributes:
    step: steps done after the chunk (1-based count); epoch: the chunk's epoch (0-based).
    n: steps in the chunk; epoch_end: the chunk ends its epoch.
    save_due: a ``config.train.checkpoint_every_steps`` boundary fell inside the chunk.
    marks: the chunk's ``marks`` on the device (``make_train_chunk``).
    points: the steps of the chunk that get ``train_steps/`` points (``actions.Sync``).
    host: filled by ``actions.Sync`` at a sync point (else None): the host copy of
      ``marks``, with a leading run axis ``[R, n]``.
    means: per-run epoch means of the train metrics so far (with ``host``).
    stop: the signal every process stops on (``kjax.preemption``), or None.
  """

  step: int
  epoch: int
  n: int
  epoch_end: bool
  save_due: bool
  marks: Any
  points: list[int] = dataclasses.field(default_factory=list)
  host: dict[str, Any] | None = None
  means: list[dict[str, float]] | None = None
  stop: int | None = None


class Program:
  """One job's compiled training: the mesh, the runs' arrays on it, the chunks.

  The runs share every array shape and the step's code (``kjax.train.train_runs``). With
  ``sharing`` None there is one run and its arrays are unstacked; otherwise a leading run
  axis, padded to the mesh's ``runs`` axis (``kjax.sharding.pad_runs``).
  """

  def __init__(self, task, configs, train_ds, sharing: str | None):
    config = configs[0]
    self.task, self.sharing, self.num_runs = task, sharing, len(configs)
    self.mesh = ksharding.make_mesh(self.num_runs if sharing == "vmap" else 1,
                                    config.get("mesh"))
    self.run_spec = ksharding.P() if sharing is None else ksharding.P(ksharding.RUNS)
    self.batch_size = config.train.batch_size
    self.num_examples = len(train_ds)
    self.steps_per_epoch = self.num_examples // self.batch_size
    self.total_steps = self.steps_per_epoch * config.train.num_epochs
    self.checkpoint_every = config.train.checkpoint_every_steps
    self.log_every = config.train.log_every_steps
    self.train_ds = train_ds
    convolutional = type(task).has_convolutions(config.model)
    conv_impl = config.model.get("conv_impl", "auto")
    self.chunk_size = autotune.steps_per_call(config.train.steps_per_call, self.steps_per_epoch,
                                              convolutional=convolutional)
    # Looked up through the class, so that a test can patch the step.
    step_fn = functools.partial(type(task).train_step, task)
    dynamic = config.data.get("binarize", "none") == "dynamic"
    self._chunks = {n: make_train_chunk(step_fn, self.steps_per_epoch, self.batch_size, n,
                                        sharing, dynamic, self.mesh, marks=True,
                                        lr_names=task.optimizer_names)
                    for n in {self.chunk_size, 1}}
    self.timing = {"compile_s": None, "steady_images_per_s": None,
                   "runs_in_program": self.num_runs, "sharing": sharing or "single",
                   "mesh": dict(self.mesh.shape), "processes": jax.process_count(),
                   "choices": {"platform": autotune.platform(),
                               "device": jax.devices()[0].device_kind,
                               "steps_per_call": self.chunk_size,
                               # How convolutions run; None for the MLP models.
                               "conv_impl": conv.resolve_impl(conv_impl) if convolutional
                               else None,
                               "batch_chunks": conv.batch_chunks(conv_impl) if convolutional
                               else None}}
    self.t_first = None  # when the first chunk started running (after its compilation)

  def on_mesh(self, per_run: list) -> Any:
    """One value per run → the program's input on the mesh (a padded stack for a sweep)."""
    if self.sharing is None:
      return ksharding.put(per_run[0], self.mesh)
    return ksharding.put(stack(ksharding.pad_runs(per_run, self.mesh)), self.mesh,
                         self.run_spec)

  def load(self, states: list, sums: list, keys: list[dict]) -> None:
    """Puts the runs' states, running sums, train and data keys and the split on the mesh."""
    self.state, self.sums = self.on_mesh(states), self.on_mesh(sums)
    self.train_key = self.on_mesh([k["train"] for k in keys])
    self.data_key = self.on_mesh([k["data"] for k in keys])
    self.data = device_data(self.train_ds, self.mesh)

    def permutation(key, epoch):  # the epoch's data order, drawn where the chunk reads it
      return jax.random.permutation(jax.random.fold_in(key, epoch), self.num_examples)

    self._permutation = jax.jit(
        permutation if self.sharing is None else jax.vmap(permutation, (0, None)),
        out_shardings=ksharding.NamedSharding(self.mesh, self.run_spec))

  def run_state(self, tree: Any, r: int) -> Any:
    """Run ``r``'s part of a program value (the value itself for a single run).

    One compiled program for the whole tree, waited for on a mesh of several CPU devices
    (``kjax.sharding.settle``): run eagerly, each leaf's gather was a program of its own
    with a collective, dispatched without waiting; on one core, two processes of a job ran
    them in different orders and each waited on the other for ever (seen in
    ``tests/test_scale_out.py``'s relaunch under the suite's pinned workers)."""
    if self.sharing is None:
      return tree
    if not any(isinstance(x, jax.Array) for x in jax.tree.leaves(tree)):
      return unstack(tree, r)  # a host copy (``kjax.sharding.local``): numpy slices
    return ksharding.settle(_unstack_program(tree, r), self.mesh)

  def host_copy(self, tree: Any) -> Any:
    """Device → host numpy with a leading run axis (``[1]`` for a single run); a collective
    in a multi-process job."""
    host = ksharding.to_host(tree)
    return host if self.sharing is not None else jax.tree.map(lambda a: np.asarray(a)[None],
                                                               host)

  def reset_sums(self) -> None:
    """Zeroes the running sums (a new epoch)."""
    self.sums = jax.tree.map(jnp.zeros_like, self.sums)

  def ticks(self, start_step: int) -> Iterator[Tick]:
    """Runs the chunks from ``start_step`` to the end of training; yields a ``Tick`` after
    each. The first call's compilation is timed (``timing['compile_s']``)."""
    step, spe = start_step, self.steps_per_epoch
    while step < self.total_steps:
      epoch = step // spe
      perm = self._permutation(self.data_key, epoch)
      epoch_end = (epoch + 1) * spe
      while step < epoch_end:
        n = self.chunk_size if epoch_end - step >= self.chunk_size else 1
        args = (self.state, self.sums, self.data, perm, self.train_key)
        if self.timing["compile_s"] is None:
          preemption.phase("compile")
          t0 = time.perf_counter()
          self._chunks[n] = self._chunks[n].lower(*args).compile()
          self.timing["compile_s"] = time.perf_counter() - t0
          preemption.phase("training")
          self.t_first = time.perf_counter()
        self.state, self.sums, marks = ksharding.settle(self._chunks[n](*args), self.mesh)
        step += n
        yield Tick(step=step, epoch=epoch, n=n, epoch_end=step == epoch_end,
                   save_due=step // self.checkpoint_every != (step - n) // self.checkpoint_every,
                   marks=marks)
