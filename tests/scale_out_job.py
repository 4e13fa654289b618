"""A tiny study for the scale-out tests, run as its own process (JAX's devices and processes
are fixed when it starts): a 3-seed vmapped CVAE sweep and one data-parallel CVAE run on
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
sys.path.insert(0, REPO)

_DEVICES = flags.DEFINE_integer("devices", 1, "Virtual CPU devices of this process.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_WHAT = flags.DEFINE_list("what", ["sweep", "single"], "Which parts to run: sweep, single, "
                          "conv, evaluate (the final evaluation of WORKDIR/single).")
_SHARD = flags.DEFINE_string("shard", "", "config.sweep.shard")
_EXECUTOR = flags.DEFINE_string("executor", "local", "config.sweep.executor")
_PARTS = flags.DEFINE_integer("parts", 0, "config.sweep.parts")


def single_config(cache_dir: str, batch_size: int = 30):
  """The MLP CVAE, one run, batch 30 (not a multiple of 4 devices), 2 epochs of 8 steps,
  no final evaluation."""
  from configs import cvae  # noqa: PLC0415
  from tests import conftest  # noqa: PLC0415
  config = conftest.on_real_kmnist(cvae.get_config(), conftest_kmnist(), pathlib.Path(cache_dir),
                                   train_split="test[:240]", batch_size=batch_size)
  config.model.architecture = "mlp"
  config.model.hidden = 64
  config.train.eval_batch_size = 100  # 200 eval images: 2 batches, 100 not a multiple of 3
  config.train.checkpoint_every_steps = 8
  config.eval.at_end_of_training = False
  config.figures.progress_every_epochs = 0
  return config


def sweep_config(cache_dir: str, shard: str = "", executor: str = "local", parts: int = 0):
  """``single_config`` with batch 32 for 3 seeds (one vmapped program: 3 runs on a mesh of
  4 devices are 2 × 2, padded to 4)."""
  import ml_collections  # noqa: PLC0415
  config = single_config(cache_dir, batch_size=32)
  config.sweep = ml_collections.ConfigDict({"seed": (0, 1, 2), "sharing": "vmap",
                                            "shard": shard, "executor": executor,
                                            "parts": parts})
  return config


def conv_config(cache_dir: str):
  """The conv β-VAE (channels 8, 16), one run, batch 32, 2 epochs of 8 steps, no final
  evaluation: the conv family's drift across device counts (tests/test_scale_out.py)."""
  from tests import conftest  # noqa: PLC0415
  config = conftest.make_tiny_config(conftest_kmnist(), pathlib.Path(cache_dir))
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
  cache = os.path.join(workdir, f"cache{os.getpid()}")
  if "sweep" in _WHAT.value:
    sweep.run_sweep(sweep_config(cache, _SHARD.value, _EXECUTOR.value, _PARTS.value),
                    os.path.join(workdir, "sweep"))
  if "single" in _WHAT.value:
    experiment.train_and_evaluate(single_config(cache), os.path.join(workdir, "single"))
  if "conv" in _WHAT.value:
    experiment.train_and_evaluate(conv_config(cache), os.path.join(workdir, "conv"))
  if "evaluate" in _WHAT.value:
    evaluate(os.path.join(workdir, "single"))


def evaluate(workdir: str) -> None:
  """The final evaluation of the run in ``workdir`` at test size (every metric family;
  CAS with 1 epoch, IWAE with k = 16 on 50 images)."""
  from kjax import evaluation  # noqa: PLC0415
  from kjax import workdir as kworkdir  # noqa: PLC0415
  config = kworkdir.read_config(workdir)
  config.eval.cas_epochs = 1
  config.eval.iwae_samples = 16
  config.eval.iwae_max_examples = 50
  evaluation.evaluate_workdir(config, workdir)


if __name__ == "__main__":
  app.run(main)
