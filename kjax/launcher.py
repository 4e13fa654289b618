"""What ``launch.py`` runs: platform set-up, then the experiment, with one-line errors."""

from __future__ import annotations

import errno
import signal
import sys
from typing import Any

from absl import logging
import jax
import ml_collections

from kjax import benchmark
from kjax import checkpointing
from kjax import compile_cache
from kjax import errors
from kjax import evaluation
from kjax import experiment
from kjax import files
from kjax import peers
from kjax import preemption
from kjax import progress
from kjax import sharding
from kjax import sweep
from kjax import tasks
from kjax import workdir as kworkdir


def run(config: ml_collections.ConfigDict, workdir: str, mode: str = "train",
        distributed: dict | None = None, config_from_workdir: bool = False) -> int:
  """Trains (then evaluates) ``config`` in ``workdir``, or with ``mode='evaluate'`` only
  evaluates the run there (``kjax.evaluation.evaluate_workdir``); returns an exit status.
  ``mode='repair'`` rebuilds the run's ``config.json``, ``metrics.jsonl`` and
  ``summary.json`` from its newest checkpoint (``kjax.workdir.repair``); ``config`` is unused.

  A config with a ``sweep`` section runs the whole study (``kjax.sweep.run_sweep``);
  ``mode='results'`` rebuilds its table and figures from finished runs.

  ``distributed`` (``coordinator_address``, ``num_processes``, ``process_id``; None
  values: detect) joins a multi-process job first (``kjax.sharding.initialize_distributed``).
  ``config_from_workdir``: ``config`` was read from ``WORKDIR/config.json`` (``--mode=evaluate``
  without ``--config``).

  Returns:
    0 on success; 143 (SIGTERM) or 130 (SIGINT) after a signal stopped training at a
    checkpoint, or stopped any other phase at once (``kjax.preemption``), with one line;
    1 after logging a one-line ``kjax: error: ...`` for a bad config value, split, data
    file or workdir (nothing is written), a non-finite loss, a workdir in use by another
    process, or a file that could not be written. A lost peer process of a job: one line,
    then the process exits at once with 1 (``kjax.peers``).
  """
  progress.quiet_libraries(logging.get_absl_handler())
  with preemption.handled():  # a signal outside the training loop: Stopped, one line
    return _run(config, workdir, mode, distributed, config_from_workdir)


def _run(config, workdir, mode, distributed, config_from_workdir) -> int:
  try:
    preemption.phase("start")
    if sharding.initialize_distributed(**(distributed or {})):
      logging.info("kjax: process %d of %d; devices: %d local, %d in the job",
                   jax.process_index(), jax.process_count(), jax.local_device_count(),
                   jax.device_count())
    compile_cache.enable()  # after joining a job (off there)
    if mode != "train" and not sharding.is_writer():
      # Evaluation and results are process 0's work (on its own devices); training is
      # every process's.
      logging.info("kjax: --mode=%s runs on process 0; process %d has nothing to do",
                   mode, jax.process_index())
      return 0
    dispatch(config, workdir, mode, config_from_workdir)
  except errors.Interrupted as e:  # SIGTERM/SIGINT during training: checkpoint saved
    print(f"kjax: {e}", file=sys.stderr, flush=True)
    return e.exit_code
  except (preemption.Stopped, KeyboardInterrupt) as e:  # outside the training loop
    signum = getattr(e, "signum", signal.SIGINT)
    print(preemption.stop_line(signum, f"every complete checkpoint in {workdir} is kept; run "
                               "the same command again to finish the job"),
          file=sys.stderr, flush=True)
    return preemption.exit_code(signum)
  except errors.KjaxError as e:  # fixable by the user: one line, no traceback
    print(f"kjax: error: {e}", file=sys.stderr, flush=True)
    return 1
  except OSError as e:  # a write outside kjax's own (orbax, TensorBoard): disk full, ...
    if e.errno not in _DISK_ERRNOS:
      raise
    print(f"kjax: error: {files.write_error(e.filename or workdir, e)}", file=sys.stderr,
          flush=True)
    return 1
  except Exception as e:  # noqa: BLE001  (a peer lost in any collective, of any type)
    if jax.process_count() == 1:
      raise
    # A collective failed (JaxRuntimeError: at once), or an error of another type (a Gloo
    # error in orbax's sync, a barrier's time-out) while JAX's coordination service reports
    # a process down. Leave at once: JAX's shutdown barrier would wait for the dead process
    # and then abort. Checkpoints are atomic, so the last complete one is kept.
    lost = (checkpointing.first_line(e) or type(e).__name__
            if isinstance(e, jax.errors.JaxRuntimeError) else peers.is_lost())
    if lost is None:
      raise  # every process is alive: this process's own error, with its traceback
    print(peers.lost_line(jax.process_index(), jax.process_count(), lost),
          file=sys.stderr, flush=True)
    preemption.exit_now(1)
  finally:
    kworkdir.unlock_all()
  return 0


def dispatch(config: ml_collections.ConfigDict, workdir: str, mode: str = "train",
             config_from_workdir: bool = False) -> Any:
  """Runs ``mode`` for ``config`` in ``workdir``: the benchmark config's studies, a sweep
  config's study, or one run (``kjax.experiment``); ``'evaluate'``, ``'results'`` and
  ``'repair'`` as ``run``'s. The one dispatcher of ``run`` and ``kjax.train_and_evaluate``.

  Returns:
    The branch's own result: a run's ``summary.json``, a sweep's record, the benchmark's
    rows, or None (``evaluate``, ``results``, ``repair``).

  Raises:
    ConfigError: ``mode='results'`` without a sweep; whatever the branch raises.
  """
  unknown = ([] if config_from_workdir or config is None or mode == "repair"
             else tasks.unknown_fields(config))  # a run's own config.json may predate a field
  if unknown:
    raise errors.ConfigError(
        f"{len(unknown)} config field(s) that no row of the table of config fields describes: "
        f"{', '.join('config.' + k for k in unknown[:5])}{' ...' if len(unknown) > 5 else ''}"
        " (the table: kjax/config_fields.py and the family's Task.fields; --help lists a "
        "config's fields)")
  if mode == "repair":
    lines = kworkdir.repair(workdir)  # each run under its lock
    for line in lines or [f"{workdir}: every record agrees with its newest checkpoint; "
                          "nothing to repair"]:
      logging.info("kjax: %s", line)
    return None
  if benchmark.is_benchmark(config):
    return {"evaluate": benchmark.evaluate_benchmark, "results": benchmark.rebuild_results}.get(
        mode, benchmark.run_benchmark)(config, workdir)
  if sweep.is_sweep(config):
    return {"evaluate": sweep.evaluate_sweep, "results": sweep.rebuild_results}.get(
        mode, sweep.run_sweep)(config, workdir)
  if mode == "results":
    raise errors.ConfigError("--mode=results needs a sweep config (with config.sweep)")
  if mode == "evaluate":
    kworkdir.read_config(workdir)  # not a run: one line, and no lock file is made
    with kworkdir.locked(workdir):
      evaluation.evaluate_workdir(config, workdir, config_from_workdir)
    return None
  return experiment.train_and_evaluate(config, workdir)


# OS errors of a disk or folder that a user fixes (space, quota, permissions, read-only).
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                errno.ENOTDIR, errno.EISDIR)
