r"""Samples from a trained run, without retraining: a Python API and a command line.

  python -m kjax.generate --workdir=runs/cvae_kmnist --label=お --style=thick \
      --num_samples=16 --seed=0 [--out=grid.png]

``--label`` is a class index or the class's character; ``--style`` is ``thin``/``thick``
(or 0/1). The PNG grid goes to ``--out`` (default
``WORKDIR/generated/<label>_<style>_seed<seed>.png``); its path is printed.
From Python::

  run = generate.load_run("runs/cgan_kmnist")
  images = generate.generate(run, label=3, style=1, num_samples=16, key=jax.random.key(0))
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kjax import errors
from kjax import figures
from kjax import workdir as kworkdir
from kjax import tasks

STYLES = ("thin", "thick")


@dataclasses.dataclass
class TrainedRun:
  """A run restored from its workdir.

  Attributes:
    workdir: the run's directory.
    config: its ``config.json`` as a ``ConfigDict``.
    task: the model family (``kjax.tasks``), with the data set's class names in ``task.info``.
    state: the train state of the newest checkpoint.
    step: that checkpoint's step.
    sample: ``jax.jit(task.sample)``, compiled once per run and shape.
  """

  workdir: str
  config: ml_collections.ConfigDict
  task: tasks.Task
  state: Any
  step: int

  def __post_init__(self):
    self.sample = jax.jit(self.task.sample)


def load_run(workdir: str) -> TrainedRun:
  """Restores the newest checkpoint of the run in ``workdir``; reads no data set.

  Raises:
    ConfigError: ``workdir`` has no ``config.json`` or no checkpoint, or holds a classifier.
  """
  config = kworkdir.read_config(workdir)
  task = tasks.get_task(config)
  if config.model.name == "classifier":
    raise errors.ConfigError(f"--workdir={workdir!r} holds a classifier run; it does not "
                             "generate images")
  state = kworkdir.restore_state(task, config, workdir)
  return TrainedRun(workdir, config, task, state, int(state.step))


def parse_label(run: TrainedRun, label: str | int) -> int:
  """A class index from an index (``3``, ``'3'``) or a class character (``'お'``).

  Raises:
    ConfigError: not a class of the run's data set.
  """
  info = run.task.info
  if isinstance(label, str) and label in info.class_names:
    return info.class_names.index(label)
  try:
    k = int(label)
  except ValueError:
    k = -1
  if not 0 <= k < info.num_classes:
    raise errors.ConfigError(
        f"--label={label!r} is not a class of {info.name}: expected 0..{info.num_classes - 1} "
        f"or one of {''.join(info.class_names)}")
  return k


def parse_style(style: str | int) -> int:
  """0 from ``thin``/``0``, 1 from ``thick``/``1``.

  Raises:
    ConfigError: anything else.
  """
  s = str(style).lower()
  if s in STYLES:
    return STYLES.index(s)
  if s in ("0", "1"):
    return int(s)
  raise errors.ConfigError(f"--style={style!r} is not allowed: expected thin, thick, 0 or 1")


def generate(run: TrainedRun, label: int, style: int, num_samples: int,
             key: jax.Array) -> np.ndarray:
  """``num_samples`` images of class ``label`` in ``style`` (0 thin, 1 thick).

  The noise is ``z ~ N(0, I)`` drawn from ``key``; the same key gives the same images.
  For the unconditional β-VAE, ``label`` and ``style`` are ignored.

  Returns:
    float32 ``[num_samples, 28, 28, 1]`` in [0, 1] (decoder means, or G(z)).

  Raises:
    ConfigError: ``num_samples < 1`` or ``label``/``style`` out of range.
  """
  if num_samples < 1:
    raise errors.ConfigError(f"--num_samples={num_samples} is not allowed: expected >= 1")
  if not 0 <= label < run.task.info.num_classes or style not in (0, 1):
    raise errors.ConfigError(f"label={label}, style={style} is not allowed: expected a class in "
                             f"0..{run.task.info.num_classes - 1} and a style 0 or 1")
  z = jax.random.normal(key, (num_samples, run.task.latent_dim()))
  labels = jnp.full((num_samples,), label, jnp.int32)
  styles = jnp.full((num_samples,), style, jnp.int32)
  return np.asarray(run.sample(run.state, z, labels, styles))


_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run's directory.")
_LABEL = flags.DEFINE_string("label", "0", "Class index, or the class's character.")
_STYLE = flags.DEFINE_string("style", "thin", "thin | thick (or 0 | 1).")
_NUM = flags.DEFINE_integer("num_samples", 16, "Number of images.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the noise.")
_NCOLS = flags.DEFINE_integer("ncols", 8, "Images per row of the grid.")
_OUT = flags.DEFINE_string("out", None, "PNG path (default WORKDIR/generated/...).")


def main(argv) -> int:
  """The command line; returns an exit status (1 with one ``kjax: error:`` line)."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    if not _WORKDIR.value:
      raise errors.ConfigError("--workdir is required: the directory of a trained run")
    run = load_run(_WORKDIR.value)
    label, style = parse_label(run, _LABEL.value), parse_style(_STYLE.value)
    images = generate(run, label, style, _NUM.value, jax.random.key(_SEED.value))
  except errors.KjaxError as e:
    print(f"kjax: error: {e}", file=sys.stderr, flush=True)
    return 1
  info = run.task.info
  out = _OUT.value or os.path.join(run.workdir, "generated",
                                   f"{label}_{STYLES[style]}_seed{_SEED.value}.png")
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  what = (f"class {info.label(label)}, {STYLES[style]}" if run.task.conditional
          else "unconditional")
  figures.plot_image_grid(out, images, min(_NCOLS.value, len(images)),
                          f"{run.task.describe()}\n{what}, seed {_SEED.value}, step {run.step}")
  print(out)
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
