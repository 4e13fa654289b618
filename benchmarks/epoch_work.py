r"""The training loop's time between chunks of steps, per action (issue 27, item 3).

  python benchmarks/epoch_work.py --config=configs/cvae.py --flagfile=configs/kmnist_offline.flags \
      --workdir=/tmp/epoch_work --config.eval.at_end_of_training=False

Runs ``launch.py`` with the given flags in this process, timing every call of the loop's
actions (``kjax.train.actions``: ``Sync``, which waits for the chunk's steps; ``LogSteps``;
``EpochEnd``, the per-epoch evaluation, records, previews and figures; ``Checkpoint``;
``Stop``) and of the next chunk's dispatch; prints their seconds, then the run's training
phase from ``timing.json`` and ``EpochEnd``'s share of it (the issue's target: ≤ 15%).
Use a fresh ``--workdir``: a finished run trains nothing.
"""

import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kjax import __main__ as command  # noqa: E402
from kjax import metric_writers  # noqa: E402
from kjax.train import actions  # noqa: E402
from kjax.train import program  # noqa: E402

SECONDS = collections.Counter()


def _timed(cls, name: str = "__call__") -> None:
  inner = getattr(cls, name)

  def call(self, *args, **kwargs):
    t = time.perf_counter()
    try:
      return inner(self, *args, **kwargs)
    finally:
      SECONDS[f"{cls.__name__}.{name}"] += time.perf_counter() - t
  setattr(cls, name, call)


def _timed_ticks() -> None:
  inner = program.Program.ticks

  def ticks(self, start_step):
    chunks = inner(self, start_step)
    while True:
      t = time.perf_counter()
      try:
        tick = next(chunks)
      except StopIteration:
        return
      SECONDS["Program.ticks (dispatch)"] += time.perf_counter() - t
      yield tick
  program.Program.ticks = ticks


def main():
  for cls in (actions.Sync, actions.LogSteps, actions.EpochEnd, actions.Checkpoint,
              actions.Stop):
    _timed(cls)
  _timed(actions.EpochEnd, "_figures")
  _timed(metric_writers.MetricWriter, "write_images")
  _timed_ticks()
  workdir = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--workdir=")), None)
  try:
    command.main(["launch.py"] + sys.argv[1:])
  except SystemExit as e:
    if e.code:
      raise
  for name, seconds in SECONDS.most_common():
    print(f"{seconds:8.3f} s  {name}")
  if workdir and os.path.exists(os.path.join(workdir, "timing.json")):
    with open(os.path.join(workdir, "timing.json")) as f:
      training = json.load(f)["phases_s"]["training"]
    print(f"training phase {training:.1f} s; EpochEnd "
          f"{100 * SECONDS['EpochEnd.__call__'] / training:.1f}% of it")


if __name__ == "__main__":
  main()
