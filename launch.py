r"""Runs a kjax experiment: ``python launch.py --config=configs/beta_vae.py [--workdir=DIR]``.

``--mode=train`` (default) trains, then evaluates (``WORKDIR/eval/metrics.json``,
``WORKDIR/report.html``); ``--mode=evaluate`` only evaluates the newest checkpoint of an
existing run, with the same ``--config`` and overrides it was trained with (plus any
``--config.eval.*``, e.g. ``--config.eval.classifier_workdir=runs/classifier_kmnist``).

A config with a ``sweep`` section (``configs/beta_vae_sweep.py``) runs a whole ablation
study: every run in ``WORKDIR/runs/<settings>/``, then ``WORKDIR/results.csv``,
``results.md``, ``figures/`` and ``report.html``; ``--mode=results`` rebuilds those from
finished runs without training.

Config values are overridden on the command line, e.g. ``--config.objective.beta=1.0``;
the workdir defaults to ``runs/<config file name>``. Re-running resumes from the newest
checkpoint in the workdir.

Every device of the machine is used (``kjax.sharding``). Several processes or hosts form one
job through ``jax.distributed``: automatically on SLURM, Open MPI, Kubernetes and Cloud TPU,
or with ``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` on each.
"""

import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config name>).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "evaluate", "results"],
                          "train (then evaluate); evaluate an existing run only; or, for a "
                          "sweep, rebuild results.csv/md, figures and report.html only.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0 of a multi-process job "
    "(jax.distributed.initialize); with --num_processes and --process_id. Unset: joined "
    "automatically where JAX detects the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU), "
    "else one process.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..N-1.")
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from kjax import launcher  # after flag parsing: keeps --help fast
  name = os.path.splitext(os.path.basename(config_flags.get_config_filename(flags.FLAGS["config"])))[0]
  sys.exit(launcher.run(_CONFIG.value, _WORKDIR.value or os.path.join("runs", name),
                        _MODE.value, {"coordinator_address": _COORDINATOR.value,
                                      "num_processes": _NUM_PROCESSES.value,
                                      "process_id": _PROCESS_ID.value}))


if __name__ == "__main__":
  app.run(main)
