"""A tiny study for the scale-out tests, run as its own process (JAX's devices and processes
are fixed when it starts): a 3-seed vmapped CVAE sweep and one data-parallel β-VAE run on
the real KMNIST test files.

  python tests/scale_out_job.py WORKDIR --devices=4
  python tests/scale_out_job.py WORKDIR --devices=2 --coordinator_address=127.0.0.1:PORT \
      --num_processes=2 --process_id=I

``WORKDIR/sweep/results.csv`` and ``WORKDIR/single/summary.json`` are what the tests
compare across device counts and processes.
"""

import os
import pathlib
import sys

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

_DEVICES = flags.DEFINE_integer("devices", 1, "Virtual CPU devices of this process.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_WHAT = flags.DEFINE_list("what", ["sweep", "single"], "Which parts to run.")


def sweep_config(cache_dir: str):
  """3 seeds of the MLP CVAE (one vmapped program), 2 epochs of 8 steps, no final evaluation."""
  import ml_collections  # noqa: PLC0415
  from configs import cvae  # noqa: PLC0415
  import conftest  # noqa: PLC0415
  config = conftest.on_real_kmnist(cvae.get_config(), conftest_kmnist(), pathlib.Path(cache_dir))
  config.model.architecture = "mlp"
  config.model.hidden = 64
  config.train.eval_batch_size = 100
  config.eval.at_end_of_training = False
  config.figures.progress_every_epochs = 0
  config.sweep = ml_collections.ConfigDict({"seed": (0, 1, 2), "sharing": "vmap"})
  return config


def single_config(cache_dir: str):
  """The conv β-VAE, one run, batch 30 (not a multiple of 4 devices), 1 epoch of 8 steps."""
  from configs import beta_vae  # noqa: PLC0415
  import conftest  # noqa: PLC0415
  config = conftest.on_real_kmnist(beta_vae.get_config(), conftest_kmnist(), pathlib.Path(cache_dir),
                                   train_split="test[:240]", num_epochs=1, batch_size=30)
  config.model.channels = (8, 16)
  config.train.eval_batch_size = 100
  config.eval.at_end_of_training = False
  config.figures.progress_every_epochs = 0
  return config


def conftest_kmnist() -> str:
  return os.path.join(os.path.dirname(REPO), "shared", "data", "kmnist")


def main(argv):
  workdir = argv[1]
  import jax  # noqa: PLC0415
  jax.config.update("jax_num_cpu_devices", _DEVICES.value)
  from kjax import experiment, sharding, sweep  # noqa: PLC0415
  if _COORDINATOR.value:
    sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  cache = os.path.join(workdir, f"cache{jax.process_index()}")
  if "sweep" in _WHAT.value:
    sweep.run_sweep(sweep_config(cache), os.path.join(workdir, "sweep"))
  if "single" in _WHAT.value:
    experiment.train_and_evaluate(single_config(cache), os.path.join(workdir, "single"))


if __name__ == "__main__":
  app.run(main)
