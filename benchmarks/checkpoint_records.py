r"""The cost of a checkpoint's records (issue 16): a checkpoint saved with and without them.

  PYTHONPATH=. python benchmarks/checkpoint_records.py                # ~1 min on 2 cores
  PYTHONPATH=. python benchmarks/checkpoint_records.py --rounds=9 --models=beta_vae

For each shipped model's default config (β-VAE, CVAE, CGAN; the classifier's data sizes
do not matter here) it builds the initial train state and times, alternately in one
process, ``--rounds`` times each: (a) ``Checkpointer.save`` of the state and the epoch's sums
followed by ``close`` (what a training checkpoint costs: orbax's async save, waited for), as
before the records; (b) the same with the ``records`` item (config, a 100-epoch metric
history, checksums of every array); and (c) ``checksums`` of the state alone (BLAKE2b of every array, on the host). It prints the
medians, their ratio and the first ``checksums`` call's time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

from kjax import checkpointing, rng, tasks, train
from configs import beta_vae, cgan, cvae

CONFIGS = {"beta_vae": beta_vae, "cvae": cvae, "cgan": cgan}


def _state(name):
  config = CONFIGS[name].get_config()
  task = tasks.get_task(config, 60_000)
  state = task.init_state(rng.stream_keys(config.seed)["init"])
  return config, state, train.zero_sums(task.train_metrics)


def _records(config):
  history = [{"step": 468 * e, "epoch": e, **{f"eval/m{i}": 100.0 + e for i in range(8)}}
             for e in range(1, 101)]
  return {"config": config.to_dict(), "history": history, "config_history": []}


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="beta_vae,cvae,cgan")
  parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args(argv)
  print(f"platform {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"{os.cpu_count()} CPUs; medians of {args.rounds} rounds, each kind in turn")
  print("| model | state MB | save, no records (ms) | save with records (ms) | ratio | "
        "checksums (ms) | first checksums call (s) |")
  print("|---|---|---|---|---|---|---|")
  for name in args.models.split(","):
    config, state, sums = _state(name)
    size = sum(np.asarray(x).nbytes for x in jax.tree.leaves(state)) / 2**20
    t0 = time.perf_counter()
    checkpointing.checksums(state)
    compile_s = time.perf_counter() - t0
    times = {"plain": [], "records": [], "checksums": []}
    root = tempfile.mkdtemp()
    for r in range(args.rounds):
      for kind in times:
        t0 = time.perf_counter()
        if kind == "checksums":
          checkpointing.checksums(state)
        else:
          ckpt = checkpointing.Checkpointer(os.path.join(root, f"{kind}{r}"), keep=1)
          ckpt.save(1, {"state": state, "sums": sums},
                    _records(config) if kind == "records" else None)
          ckpt.close()
        times[kind].append((time.perf_counter() - t0) * 1e3)
    shutil.rmtree(root)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"| {name} | {size:.1f} | {med['plain']:.0f} | {med['records']:.0f} | "
          f"{med['records'] / med['plain']:.2f} | {med['checksums']:.1f} | {compile_s:.2f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
