r"""Benchmark of a sweep's sharing modes: images/s of N runs in one program vs one after another.

  python benchmarks/sweep.py                              # all models, N = 1 4 8 16
  python benchmarks/sweep.py --models=cvae,cgan --runs=1,8 --seconds=5

For each model (the conv β-VAE of ``configs/beta_vae.py``, the MLP CVAE of Shyam (2024),
"Conditional Generation with VAE and GAN", and the MLP CGAN of ``configs/cgan.py``, each at
its config's batch size) and each N, it times the compiled programs ``kjax.train`` runs for
a sweep group of N runs (each with its own seed and β or learning rate): ``vmap`` (one wide
step), ``map`` (``lax.map`` over the run axis in
one program) and ``sequential`` (N calls of the single-run program per step, as N runs one
after another). Synthetic uint8 images with K49's 49 classes; steady state after warm-up;
the modes of one (model, N) are timed alternately, ``--repeats`` times, and the median
is kept. Prints one JSON line per (model, N) with total images/s per mode and each mode's
ratio to ``sequential``; ``kjax.sweep.default_sharing`` follows these numbers.
"""

import argparse
import importlib
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from kjax import rng as krng
from kjax import tasks
from kjax import train

MODELS = {"beta_vae": ("beta_vae", {}), "cvae": ("cvae", {"architecture": "mlp"}),
          "cgan": ("cgan", {"architecture": "mlp_large"})}


def _timed(fn, seconds):
  fn()  # warm-up (after compilation)
  calls, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < seconds or calls < 2:
    fn()
    calls += 1
  return calls, time.perf_counter() - t0


def bench(model: str, num_runs: int, seconds: float, repeats: int, num_images: int):
  name, overrides = MODELS[model]
  config = importlib.import_module(f"configs.{name}").get_config()
  config.data.name = "k49"
  for k, v in overrides.items():
    config.model[k] = v
  batch_size = config.train.batch_size
  task = tasks.get_task(config, num_images)
  gen = np.random.default_rng(0)
  data = jax.device_put({
      "images": gen.integers(0, 256, (num_images, 28, 28, 1), dtype=np.uint8),
      "labels": gen.integers(0, task.info.num_classes, num_images).astype(np.int32),
      "styles": gen.integers(0, 2, num_images).astype(np.int32)})
  keys = [krng.stream_keys(seed) for seed in range(num_runs)]
  states = [task.init_state(k["init"]) for k in keys]
  perms = [jax.random.permutation(k["data"], num_images) for k in keys]
  spe = num_images // batch_size
  out = {"model": model, "runs": num_runs, "batch_size": batch_size,
         "platform": jax.devices()[0].platform, "device": jax.devices()[0].device_kind}
  programs = {}
  single = train.make_train_chunk(task.train_step, spe, batch_size, 1)
  s_states = list(states)
  s_sums = [train.zero_sums(task.train_metrics) for _ in states]

  def sequential():
    for r in range(num_runs):
      s_states[r], s_sums[r] = single(s_states[r], s_sums[r], data, perms[r], keys[r]["train"])
    jax.block_until_ready(s_sums)

  programs["sequential"] = sequential
  for mode in ("vmap", "map"):
    if num_runs == 1:
      continue
    chunk = train.make_train_chunk(task.train_step, spe, batch_size, 1, mode)
    box = {"state": train.stack(states), "sums": train.stack(s_sums)}
    perm = jnp.stack(perms)
    key = jnp.stack([k["train"] for k in keys])
    t0 = time.perf_counter()
    compiled = chunk.lower(box["state"], box["sums"], data, perm, key).compile()
    out[f"{mode}_compile_s"] = round(time.perf_counter() - t0, 2)

    def stacked(compiled=compiled, box=box, perm=perm, key=key):
      box["state"], box["sums"] = compiled(box["state"], box["sums"], data, perm, key)
      jax.block_until_ready(box["sums"])

    programs[mode] = stacked
  rates = {m: [] for m in programs}
  for _ in range(repeats):
    for mode, fn in programs.items():
      calls, elapsed = _timed(fn, seconds)
      rates[mode].append(calls * batch_size * num_runs / elapsed)
  seq = statistics.median(rates["sequential"])
  for mode, values in rates.items():
    out[f"{mode}_images_per_s"] = round(statistics.median(values))
    out[f"{mode}_vs_sequential"] = round(statistics.median(values) / seq, 2)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="beta_vae,cvae,cgan")
  parser.add_argument("--runs", default="1,4,8,16")
  parser.add_argument("--seconds", type=float, default=3.0, help="per timed window")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--num_images", type=int, default=8000)
  args = parser.parse_args()
  for model in args.models.split(","):
    for n in (int(v) for v in args.runs.split(",")):
      print(json.dumps(bench(model, n, args.seconds, args.repeats, args.num_images)), flush=True)


if __name__ == "__main__":
  main()
