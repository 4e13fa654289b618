"""kjax: JAX/Flax generative models of handwriting (beta-VAE, CVAE, CGAN) on Kuzushiji and MNIST.

Training from Python (what ``kjax --config=cvae`` does)::

  import kjax
  from kjax import configs

  config = configs.get_config("cvae")          # a ConfigDict; change any field
  config.data.name = "kmnist"
  summary = kjax.train_and_evaluate(config, "runs/cvae")

  from kjax import generate                    # sampling from a trained run
  run = generate.load_run("runs/cvae")
  images = generate.generate(run, label=3, style=1, num_samples=16, key=jax.random.key(0))

``import kjax`` is light (no JAX import) so that the command line starts fast; the modules
load when first used.
"""

from __future__ import annotations

from typing import Any

from kjax.version import __version__  # noqa: F401


def train_and_evaluate(config, workdir: str) -> dict[str, Any]:
  """Trains ``config``'s model in ``workdir`` (resuming from its newest checkpoint), then,
  with ``config.eval.at_end_of_training``, evaluates it (``WORKDIR/eval/metrics.json``,
  ``WORKDIR/report.html``): the same run as ``kjax --config=... --workdir=WORKDIR``.
  A config with a ``sweep`` section runs the whole study (``kjax.sweep.run_sweep``), the
  benchmark config every study (``kjax.benchmark.run_benchmark``).

  Args:
    config: an ``ml_collections.ConfigDict`` such as ``kjax.configs.get_config('cvae')``.
    workdir: the run's directory (created; an existing run there is resumed).

  Returns:
    The run's ``summary.json`` (step, epoch and the last epoch's ``train/*`` and ``eval/*``
    metrics, nats per image for the VAEs); for a sweep ``run_sweep``'s record (``runs``,
    ``trained``, ``results``: the rows of ``WORKDIR/results.csv``); for the benchmark
    ``{study: its rows}``.

  Raises:
    kjax.errors.ConfigError, DataError, DataFileNotFoundError, ChecksumError: bad input,
      before anything is written. kjax.errors.NonFiniteLossError: the loss became NaN/Inf
      (the last good checkpoint is kept). kjax.errors.WorkdirLockedError: another process
      trains or evaluates ``workdir``. kjax.errors.Interrupted: SIGTERM/SIGINT stopped the
      training at a checkpoint. kjax.errors.WriteError: a file could not be written.
  """
  # Imported here: keeps `import kjax` light.
  from kjax import launcher  # noqa: PLC0415
  from kjax import workdir as kworkdir  # noqa: PLC0415
  try:
    return launcher.dispatch(config, workdir)
  finally:
    kworkdir.unlock_all()  # every run's lock, whatever stopped it (kjax.workdir.lock)
