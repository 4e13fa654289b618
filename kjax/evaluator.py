"""The per-epoch evaluation: exact means over a whole split, for one run or a stack of runs.

Used by the training loop after every epoch and by ``kjax.evaluation`` for the final
likelihood numbers. Padded batches and a mask (big_vision's habit): no example is dropped
and no example counts twice, whatever the batch size.
"""

from __future__ import annotations

import jax
import numpy as np

from kjax import data as kdata
from kjax import sharding as ksharding
from kjax import tasks

SHARING_MODES = ("vmap", "map")  # how a stack of runs shares one compiled program


def over_runs(fn, sharing: str, in_axes: tuple, mesh=None):
  """``fn`` applied to a leading run axis of the arguments whose ``in_axes`` entry is 0
  (``None``: shared by every run): ``jax.vmap`` (one wide program; with a ``mesh`` its run
  axis is the mesh's ``runs`` axis, ``spmd_axis_name``) or ``jax.lax.map`` (runs one after another
  inside one program; a vmapped convolution becomes a grouped convolution, a slow path on
  XLA:CPU, jax-ml/jax#26568).

  Raises:
    ValueError: ``sharing`` is not in ``SHARING_MODES``.
  """
  if sharing == "vmap":
    return jax.vmap(fn, in_axes=in_axes,
                    spmd_axis_name=None if mesh is None else ksharding.RUNS)
  if sharing != "map":
    raise ValueError(f"sharing={sharing!r} is not one of {SHARING_MODES}")

  def mapped(*args):
    stacked = tuple(a for a, ax in zip(args, in_axes) if ax == 0)

    def one(per_run):
      it = iter(per_run)
      return fn(*(next(it) if ax == 0 else a for a, ax in zip(args, in_axes)))

    return jax.lax.map(one, stacked)

  return mapped


class Evaluator:
  """Exact evaluation over a whole split: padded batches and a mask, no dropped remainder.

  The split is put on the device once, padded to a multiple of ``batch_size``. Each
  batch ``b`` uses the key ``fold_in(eval_key, b)``, so every evaluation of the run sees
  the same noise and numbers are comparable across epochs.

  Args:
    task: the model family (its ``eval_sums`` and ``eval_metrics``).
    ds: the split.
    batch_size: images per compiled call (capped at the split size).
    eval_key: the run's ``eval`` stream; for a stack of R runs, a key array ``[R]``.
    sharing: None for one run; ``'vmap'`` or ``'map'`` for a stack (``over_runs``).
    mesh: the program's mesh (``kjax.sharding``): the split is replicated on it, each batch
      split over ``data`` and a stack's runs over ``runs`` (``eval_key`` then holds the
      padded stack, ``kjax.sharding.pad_runs``); None: the default device.
    num_runs: the runs whose means are returned (the first ``num_runs`` of a padded stack).
  """

  def __init__(self, task: tasks.Task, ds: kdata.Dataset, batch_size: int, eval_key: jax.Array,
               sharing: str | None = None, mesh=None, num_runs: int | None = None):
    n = len(ds)
    batch_size = min(batch_size, n)
    num_batches = -(-n // batch_size)

    def pad(a):
      out = np.zeros((num_batches * batch_size, *a.shape[1:]), a.dtype)
      out[:n] = a
      out = out.reshape(num_batches, batch_size, *a.shape[1:])
      return jax.device_put(out) if mesh is None else ksharding.put(out, mesh)

    batches = {"images": pad(ds.images), "labels": pad(ds.labels.astype(np.int32)),
                "styles": pad(ds.styles.astype(np.int32))}
    mask = pad(np.ones(n, bool))
    # Sliced once: slicing each call cost 5 ms an epoch for the CVAE (eager device ops).
    self._batch_list = [{k: v[b] for k, v in batches.items()} for b in range(num_batches)]
    self._mask_list = [mask[b] for b in range(num_batches)]
    fold = jax.random.fold_in if sharing is None else jax.vmap(jax.random.fold_in, (0, None))
    self._keys = [fold(eval_key, b) for b in range(num_batches)]
    if mesh is not None:
      self._keys = ksharding.put(self._keys, mesh, ksharding.P(
          ksharding.RUNS) if sharing is not None else ksharding.P())

    def sums(state, batch, mask, key):
      batch, mask = ksharding.constrain_batch((batch, mask), mesh)
      return task.eval_sums(state, batch, mask, key)

    fn = sums if sharing is None else over_runs(sums, sharing, (0, None, None, 0), mesh)
    self._fn = jax.jit(fn)
    self._names = task.eval_metrics
    self._stacked = sharing is not None
    self._num_runs = num_runs
    self._mesh = mesh

  def __call__(self, state) -> dict[str, float] | list[dict[str, float]]:
    """Means over the split of the task's ``eval_metrics``; a list of them, one per run,
    for a stack."""
    # One host copy of every batch's sums, added in float32 in batch order (as on the
    # device before issue 27, which added them there with one eager op per leaf and batch).
    per_batch = ksharding.to_host([
        ksharding.settle(self._fn(state, batch, mask, key), self._mesh)
        for batch, mask, key in zip(self._batch_list, self._mask_list, self._keys)])
    total = per_batch[0]
    for sums in per_batch[1:]:
      total = jax.tree.map(np.add, total, sums)
    if not self._stacked:
      return {k: float(total[k] / total["count"]) for k in self._names}
    return [{k: float(total[k][r] / total["count"][r]) for k in self._names}
            for r in range(self._num_runs or len(total["count"]))]
