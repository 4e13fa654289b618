"""Platform-aware defaults: what ``'auto'`` settings resolve to, chosen by measurement.

``config.train.steps_per_call='auto'`` (the default) and ``config.model.conv_impl='auto'``
(``kjax.models.conv``) resolve here or there from the JAX platform; the run records the
choices in ``timing.json`` (``choices``).

Measured (``benchmarks/train_step.py --steps_per_call=N``, same machine, same session):

* XLA:CPU (2 cores, jax 0.10.2), models with convolutions: a ``lax.scan`` of train steps
  is much slower than one step per call: the conv β-VAE ran at 37 vs 690 images/s with
  N = 10 vs 1 (DESIGN.md), and its gradient took 422 ms inside a one-iteration scan
  against 123 ms outside. So 1.
* XLA:CPU, MLP models (the CVAE's ``mlp``/``mlp_bn``, the CGAN's ``mlp``/``mlp_large``):
  a step is short enough that dispatch shows; a scan of 50 steps ran the seed-003 CVAE at
  70,000 vs 59,600 images/s and its CGAN at 28,800 vs 25,300 (docs/speed.md). So many.
* GPU/TPU: a step of these small models is dispatch-bound (microseconds of work per
  kernel), so many steps per call.

"Many" is the largest divisor of the epoch's steps up to ``MAX_STEPS_PER_CALL``, so that
every call is the same program.
"""

from __future__ import annotations

import jax

from kjax import errors

# Steps per compiled call on GPU/TPU: enough to hide the host's dispatch (tens of µs per
# step) behind the device's work, few enough that logging and checkpoints stay on time.
MAX_STEPS_PER_CALL = 100
# Below this, a divisor of the epoch is too small to help: use MAX_STEPS_PER_CALL and
# let the loop finish the epoch one step at a time.
MIN_USEFUL_DIVISOR = 10


def platform() -> str:
  """JAX's default backend: ``'cpu'``, ``'gpu'`` or ``'tpu'``."""
  return jax.default_backend()


def steps_per_call(value, steps_per_epoch: int, backend: str | None = None,
                   convolutional: bool = True) -> int:
  """Resolves ``config.train.steps_per_call``.

  Args:
    value: a positive int (or its decimal string), or ``'auto'``.
    steps_per_epoch: train steps in one epoch (≥ 1).
    backend: the platform (default: JAX's default backend).
    convolutional: whether the model has convolutions (``kjax.tasks.has_convolutions``).

  Returns:
    The number of train steps per compiled call: ``value`` as given, or for ``'auto'``
    1 for a convolutional model on CPU, else the largest divisor of ``steps_per_epoch`` up
    to ``MAX_STEPS_PER_CALL`` (or ``min(MAX_STEPS_PER_CALL, steps_per_epoch)`` when that
    divisor is below ``MIN_USEFUL_DIVISOR``).

  Raises:
    ConfigError: ``value`` is neither ``'auto'`` nor a positive integer.
  """
  if value == "auto":
    if convolutional and (backend or platform()) == "cpu":
      return 1
    best = max(d for d in range(1, min(MAX_STEPS_PER_CALL, steps_per_epoch) + 1)
               if steps_per_epoch % d == 0)
    return best if best >= MIN_USEFUL_DIVISOR else min(MAX_STEPS_PER_CALL, steps_per_epoch)
  try:
    steps = int(value)
  except (TypeError, ValueError):
    steps = 0
  if steps < 1 or isinstance(value, (bool, float)):
    raise errors.ConfigError(f"config.train.steps_per_call={value!r} is not allowed: "
                             "expected 'auto' or an integer >= 1")
  return steps
