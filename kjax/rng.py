"""A run's PRNG streams: one root key from ``config.seed``, independent streams by ``fold_in``.

DESIGN.md: the step's key is ``fold_in(streams['train'], step)`` inside the compiled step and
the epoch's data order a permutation drawn from ``fold_in(streams['data'], epoch)``, so a run
is a pure function of (config, data) and a resumed run, or the same run stacked in a sweep,
replays the same noise and batches.
"""

from __future__ import annotations

import jax

from kjax.config_fields import NUM_SEEDS  # noqa: F401  (the seeds kjax tells apart)

STREAMS = ("init", "data", "train", "eval", "figures", "evaluation")


def stream_keys(seed: int) -> dict[str, jax.Array]:
  """The run's independent PRNG streams, ``{name: key}`` for every name in ``STREAMS``:
  ``init`` (parameters), ``data`` (epoch order), ``train`` (step noise), ``eval`` (per-epoch
  evaluation), ``figures`` (fixed preview noise) and ``evaluation`` (the final report)."""
  root = jax.random.key(seed)
  return {name: jax.random.fold_in(root, i) for i, name in enumerate(STREAMS)}
