r"""Samples from a trained run, without retraining: a Python API and a command line.

  python -m kjax.generate --workdir=runs/cvae_kmnist --label=お --style=thick \
      --num_samples=16 --seed=0 [--ncols=8] [--out=grid.png]

``--label`` is a class index or the class's character; ``--style`` is ``thin``/``thick``
(or 0/1); both default to 0/thin and are refused for the unconditional β-VAE. The image
grid goes to ``--out`` (default ``WORKDIR/generated/<label>_<style>_seed<seed>.png``, or
``unconditional_seed<seed>.png``); its path is the one line printed. Every flag is checked
before the checkpoint is restored; a bad one gives one ``kjax: error:`` line and exit
status 1, and so do a workdir without a readable checkpoint and samples that hold NaN or
infinity (a corrupt checkpoint or a diverged run): nothing is written then. Libraries'
INFO logs are hidden unless ``--verbosity=0`` (absl's flag) is given. From Python::

  run = generate.load_run("runs/cgan_kmnist")
  images = generate.generate(run, label=3, style=1, num_samples=16, key=jax.random.key(0))
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kjax import compile_cache
from kjax import errors
from kjax import figures
from kjax import files
from kjax import preemption
from kjax import rng
from kjax import workdir as kworkdir
from kjax import tasks
from kjax.trained import TrainedRun

STYLES = ("thin", "thick")
MAX_SAMPLES = 1024  # one PNG grid stays under matplotlib's 2**16-pixel limit per side
_OUT_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "tif", "tiff", "webp", "eps", "ps")


def read_run(workdir: str) -> tuple[ml_collections.ConfigDict, tasks.Task]:
  """The config and model family of the run in ``workdir``, without restoring anything
  (cheap: reads ``config.json`` only), for checking a request before ``load_run``.

  Returns:
    ``(config, task)``.

  Raises:
    ConfigError: ``workdir`` has no ``config.json`` nor a checkpoint recording its config,
      or holds a classifier.
  """
  config = kworkdir.read_config(workdir)
  task = tasks.get_task(config, None)  # a reader: restores and samples, never trains
  if task.is_classifier:
    raise errors.ConfigError(f"--workdir={workdir!r} holds a classifier run; it does not "
                             "generate images")
  return config, task


def load_run(workdir: str) -> TrainedRun:
  """Restores the newest checkpoint of the run in ``workdir``; reads no data set.

  Raises:
    ConfigError: ``workdir`` has no config (``config.json`` or a checkpoint's record) or no
      checkpoint, or holds a classifier.
    CheckpointMismatchError: the checkpoint holds another model than ``config.json``.
  """
  compile_cache.enable()
  config, task = read_run(workdir)
  state = kworkdir.restore_state(task, config, workdir)
  return TrainedRun(config, workdir, task, state, int(state.step))


def parse_label(run: TrainedRun | tasks.Task, label: str | int) -> int:
  """A class index from an index (``3``, ``'3'``) or a class character (``'お'``).

  Args:
    run: a ``TrainedRun``, or the ``task`` of ``read_run`` (only its ``info`` is used).
    label: the index or the character.

  Raises:
    ConfigError: not a class of the run's data set.
  """
  info = getattr(run, "task", run).info
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


def check_num_samples(num_samples: int) -> None:
  """Refuses a number of images outside ``[1, MAX_SAMPLES]``.

  Raises:
    ConfigError: naming the value and the range.
  """
  if not 1 <= num_samples <= MAX_SAMPLES:
    raise errors.ConfigError(f"--num_samples={num_samples} is not allowed: expected 1.."
                             f"{MAX_SAMPLES} (for more, call kjax.generate.generate from "
                             "Python in batches)")


def check_seed(seed: int) -> None:
  """Refuses a seed outside ``[0, 2**32)``: ``jax.random.key`` keeps only its low 32 bits
  for the default PRNG, so seeds ``s`` and ``s + 2**32`` would give the same images.

  Raises:
    ConfigError: naming the value and the range.
  """
  if not 0 <= seed < rng.NUM_SEEDS:
    raise errors.ConfigError(f"--seed={seed} is not allowed: expected 0..{rng.NUM_SEEDS - 1} "
                             "(seeds alias modulo 2**32)")


def generate(run: TrainedRun, label: int, style: int, num_samples: int,
             key: jax.Array) -> np.ndarray:
  """``num_samples`` images of class ``label`` in ``style`` (0 thin, 1 thick).

  The noise is ``z ~ N(0, I)`` drawn from ``key``; the same key gives the same images.
  For the unconditional β-VAE, ``label`` and ``style`` are ignored (pass 0, 0).

  Returns:
    float32 ``[num_samples, H, W, 1]`` in [0, 1] (decoder means, or G(z)), H × W the run's
    data set's ``image_shape`` (``run.task.info``).

  Raises:
    ConfigError: ``num_samples < 1`` or ``label``/``style`` out of range.
    NonFiniteSamplesError: an image holds NaN or infinity (a corrupt checkpoint or a
      diverged run); the message names the step and the workdir.
  """
  if num_samples < 1:
    raise errors.ConfigError(f"--num_samples={num_samples} is not allowed: expected >= 1")
  if not 0 <= label < run.task.info.num_classes or style not in (0, 1):
    raise errors.ConfigError(f"label={label}, style={style} is not allowed: expected a class in "
                             f"0..{run.task.info.num_classes - 1} and a style 0 or 1")
  z = jax.random.normal(key, (num_samples, run.task.latent_dim()))
  labels = jnp.full((num_samples,), label, jnp.int32)
  styles = jnp.full((num_samples,), style, jnp.int32)
  images = np.asarray(run.sample(run.state, z, labels, styles))
  errors.NonFiniteSamplesError.check(images, run.step, run.workdir)
  return images


def generate_grid(workdir: str, label: str | int | None = None, style: str | int | None = None,
                  num_samples: int = 16, seed: int = 0, ncols: int = 8,
                  out: str | None = None) -> str:
  """What ``python -m kjax.generate`` does: checks the request, restores the run, samples
  ``num_samples`` images from ``jax.random.key(seed)`` and writes them as a grid.

  Every argument is checked before the checkpoint is restored and before anything is
  written: the numbers and the style first, then (from ``config.json`` alone) the label
  and whether the run takes a label and a style at all.

  Args:
    workdir: a trained run's directory.
    label: class index or character; None: class 0 (conditional runs only).
    style: ``thin``/``thick``/0/1; None: thin (conditional runs only).
    num_samples: images in the grid, 1..``MAX_SAMPLES``.
    seed: the noise's seed, in ``[0, 2**32)``.
    ncols: images per row, >= 1.
    out: the image path (its extension picks the format, e.g. ``.png``); None:
      ``WORKDIR/generated/<label>_<style>_seed<seed>.png`` (``unconditional_seed<seed>.png``
      for the β-VAE).

  Returns:
    The path written.

  Raises:
    ConfigError: a bad argument (the message names it and what is allowed), e.g. a
      ``label`` or ``style`` for an unconditional run, or a workdir without a trained run.
    CheckpointMismatchError: the checkpoint holds another model than ``config.json``, or
      no checkpoint of it can be read.
    NonFiniteSamplesError: the samples hold NaN or infinity (nothing is written).
  """
  if not workdir:
    raise errors.ConfigError("--workdir is required: the directory of a trained run")
  check_num_samples(num_samples)
  check_seed(seed)
  if ncols < 1:
    raise errors.ConfigError(f"--ncols={ncols} is not allowed: expected >= 1")
  if out is not None:
    ext = os.path.splitext(out)[1].lower().lstrip(".")
    if ext not in _OUT_FORMATS:
      raise errors.ConfigError(f"--out={out!r} is not allowed: expected a path ending in "
                               f"{' | '.join('.' + f for f in _OUT_FORMATS)}")
    if os.path.isdir(out):
      raise errors.ConfigError(f"--out={out!r} is a directory: expected a file path")
  style_k = None if style is None else parse_style(style)
  config, task = read_run(workdir)
  if not task.conditional and (label is not None or style is not None):
    given = " ".join(f"--{name}={value}" for name, value in (("label", label), ("style", style))
                     if value is not None)
    raise errors.ConfigError(f"{given}: {workdir} is an unconditional {config.model.name} run; "
                             "it takes no --label or --style (drop them)")
  label_k = 0 if label is None else parse_label(task, label)
  style_k = 0 if style is None else style_k
  preemption.phase("generate", workdir)
  state = kworkdir.restore_state(task, config, workdir)  # the first slow step
  run = TrainedRun(config, workdir, task, state, int(state.step))
  images = generate(run, label_k, style_k, num_samples, jax.random.key(seed))
  if task.conditional:
    name = f"{label_k}_{STYLES[style_k]}"
    what = f"class {task.info.label(label_k)}, {STYLES[style_k]}"
  else:
    name = what = "unconditional"
  out = out or os.path.join(workdir, "generated", f"{name}_seed{seed}.png")
  files.makedirs(os.path.dirname(os.path.abspath(out)))
  figures.plot_image_grid(out, images, min(ncols, len(images)),
                          f"{task.describe()}\n{what}, seed {seed}, step {run.step}")
  return out


def define_flags() -> None:
  """Defines the command line's flags (only when run as ``python -m kjax.generate``, so that
  importing this module next to ``kjax.cli`` defines no absl flag twice)."""
  flags.DEFINE_string("workdir", None, "A trained run's directory.")
  flags.DEFINE_string("label", None, "Class index, or the class's character "
                      "(default 0; conditional runs only).")
  flags.DEFINE_string("style", None, "thin | thick (or 0 | 1; default thin; "
                      "conditional runs only).")
  flags.DEFINE_integer("num_samples", 16, f"Number of images, 1..{MAX_SAMPLES}.")
  flags.DEFINE_integer("seed", 0, "Seed of the noise, 0..2**32-1.")
  flags.DEFINE_integer("ncols", 8, "Images per row of the grid.")
  flags.DEFINE_string("out", None, "Image path, .png (default WORKDIR/generated/...).")


def main(argv) -> int:
  """The command line; returns an exit status: 0 after printing the image's path, 1 after
  one ``kjax: error:`` line on stderr (nothing written).

  Libraries' INFO logs (orbax's per-restore lines, JAX's platform probing) are hidden
  unless absl's ``--verbosity`` (``-v``) is given, e.g. ``--verbosity=0``.
  """
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # library and kjax INFO lines alike
  try:
    f = flags.FLAGS
    with preemption.handled():
      out = generate_grid(f.workdir, f.label, f.style, f.num_samples, f.seed, f.ncols, f.out)
  except errors.KjaxError as e:
    print(f"kjax: error: {e}", file=sys.stderr, flush=True)
    return 1
  except preemption.Stopped as e:  # nothing half-written: the image is written atomically
    print(preemption.stop_line(e.signum, "nothing was written"), file=sys.stderr, flush=True)
    return e.exit_code
  except OSError as e:  # a library's write (a full disk, an unwritable folder)
    print(f"kjax: error: {files.write_error(e.filename or f.workdir, e)}", file=sys.stderr,
          flush=True)
    return 1
  print(out)
  return 0


if __name__ == "__main__":
  with preemption.command():
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
