r"""The IWAE bound's speed against the train step's, as FLOP rates (issue 27, item 1).

  python benchmarks/iwae.py                    # the β-VAE (conv) and the CVAE (mlp)
  python benchmarks/iwae.py --images=100 --k=5000

For each model it times, on synthetic images with K49's classes: the train step (the
compiled chunk ``kjax.train`` runs, ``benchmarks/train_step.py``'s runner) and the IWAE
bound as ``kjax.evaluation.likelihood`` computes it (``eval.iwae_batch_size`` images per
call, ``eval.iwae_chunk_size`` samples per decoder call), each after a warm-up call. FLOPs
are XLA's own count of the compiled programs (``cost_analysis``; for the bound, one chunk's
count times the chunks, since XLA counts a loop's body once; custom-VJP convolutions may be
counted low, so compare the conv model's seconds too). Prints one JSON line per
model: seconds, FLOPs and GFLOP/s of both, and their ratio (the target: >= 0.25).
"""

import argparse
import functools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train_step  # noqa: E402  (benchmarks/train_step.py)
from kjax import configs  # noqa: E402
from kjax import tasks  # noqa: E402


def _flops(fn, *args) -> float:
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis.get("flops", 0.0))


def measure(model: str, architecture: str, images: int, k: int, repeats: int = 3) -> dict:
  """Seconds and GFLOP/s of ``images`` images' IWAE bounds with ``k`` samples, and of one
  call of train steps, for ``model`` with ``architecture``."""
  config = configs.get_config(model)
  config.model.architecture = architecture
  task = tasks.get_task(config, 8000)
  split = train_step.synthetic_split(max(images, 1000), task.info.num_classes)
  # the train step: the loop's compiled chunk
  steps = 10
  run, _ = train_step.kjax_runner(config, steps, split=split)
  t = time.perf_counter()
  for _ in range(repeats):
    run()
  run.sync()
  train_s = (time.perf_counter() - t) / (repeats * steps)
  state = task.fresh_state(jax.random.key(0))
  batch_size = config.train.batch_size
  batch = {name: jnp.asarray(v[:batch_size]) for name, v in split.items()}
  step_flops = _flops(task.train_step, state, batch, jax.random.key(1))
  # the IWAE bound, as evaluation.likelihood calls it
  ev = config.eval
  b = ev.iwae_batch_size
  bound = jax.jit(functools.partial(task.log_likelihood_bound, num_samples=k,
                                    chunk_size=ev.iwae_chunk_size))
  rows = {name: jnp.asarray(v[:b]) for name, v in split.items()}
  bound(state, rows, jax.random.key(2)).block_until_ready()
  # XLA counts a loop's body once: the FLOPs of one chunk of samples, times the chunks.
  chunk = min(ev.iwae_chunk_size, k)
  bound_flops = _flops(functools.partial(task.log_likelihood_bound, num_samples=chunk,
                                         chunk_size=chunk),
                       state, rows, jax.random.key(2)) * k / chunk
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    for i in range(0, images, b):
      rows = {name: jnp.asarray(v[i:i + b]) for name, v in split.items()}
      np.asarray(bound(state, rows, jax.random.fold_in(jax.random.key(2), i)))
    times.append(time.perf_counter() - t)
  iwae_s = float(np.median(times))
  calls = -(-images // b)
  train_rate = step_flops / train_s / 1e9
  iwae_rate = bound_flops * calls / iwae_s / 1e9
  return {"model": model, "architecture": architecture, "images": images, "k": k,
          "iwae_s": round(iwae_s, 2), "iwae_gflop": round(bound_flops * calls / 1e9, 1),
          "iwae_gflop_per_s": round(iwae_rate, 1), "train_step_s": round(train_s, 5),
          "train_gflop_per_s": round(train_rate, 1), "ratio": round(iwae_rate / train_rate, 3),
          "platform": jax.devices()[0].platform}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=100)
  parser.add_argument("--k", type=int, default=5000)
  parser.add_argument("--models", default="beta_vae:conv,cvae:mlp")
  args = parser.parse_args()
  for item in args.models.split(","):
    model, architecture = item.split(":")
    print(json.dumps(measure(model, architecture, args.images, args.k)), flush=True)


if __name__ == "__main__":
  main()
