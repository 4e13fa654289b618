r"""Benchmark of the β-VAE train step: steady-state images/s, compile time, peak memory.

  python benchmarks/train_step.py                       # the defaults of configs/beta_vae.py
  python benchmarks/train_step.py --upsample=conv_transpose --steps_per_call=10

It times the same compiled program that ``kjax.train`` runs (batches gathered on the
device from a resident uint8 split), on synthetic images, on the default JAX platform.
Peak memory is the device allocator's peak where the platform reports one (GPU/TPU), else
the process's peak resident set size.
"""

import argparse
import json
import resource
import time

import jax
import numpy as np

from configs import beta_vae
from kjax import train


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--latent_dim", type=int, default=2)
  parser.add_argument("--upsample", default="subpixel", choices=("subpixel", "conv_transpose"))
  parser.add_argument("--channels", default="32,64")
  parser.add_argument("--steps_per_call", type=int, default=1)
  parser.add_argument("--num_images", type=int, default=8000)
  parser.add_argument("--seconds", type=float, default=20.0, help="timed duration")
  args = parser.parse_args()

  config = beta_vae.get_config()
  config.model.latent_dim = args.latent_dim
  config.model.upsample = args.upsample
  config.model.channels = tuple(int(c) for c in args.channels.split(","))
  keys = train.stream_keys(0)
  model = train.create_model(config.model)
  state = train.create_train_state(config, model, keys["init"])
  sums = train.zero_sums()
  images = jax.device_put(np.random.default_rng(0).integers(
      0, 256, (args.num_images, 28, 28, 1), dtype=np.uint8))
  perm = jax.random.permutation(keys["data"], args.num_images)
  steps_per_epoch = args.num_images // args.batch_size
  chunk = train.make_train_chunk(steps_per_epoch, args.batch_size, args.steps_per_call,
                                 "bernoulli", 0.5)
  t0 = time.perf_counter()
  compiled = chunk.lower(state, sums, images, perm, keys["train"]).compile()
  compile_s = time.perf_counter() - t0
  for _ in range(3):  # warm-up
    state, sums = compiled(state, sums, images, perm, keys["train"])
  jax.block_until_ready(sums)
  calls, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < args.seconds:
    state, sums = compiled(state, sums, images, perm, keys["train"])
    calls += 1
  jax.block_until_ready(sums)
  elapsed = time.perf_counter() - t0
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  peak = (stats or {}).get("peak_bytes_in_use")
  result = {
      "platform": device.platform, "device": device.device_kind, "jax": jax.__version__,
      "batch_size": args.batch_size, "upsample": args.upsample, "channels": args.channels,
      "steps_per_call": args.steps_per_call,
      "images_per_s": calls * args.steps_per_call * args.batch_size / elapsed,
      "compile_s": compile_s,
      "peak_memory_mib": (peak / 2**20 if peak else
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
      "peak_memory_kind": "device allocator" if peak else "process max RSS",
  }
  print(json.dumps(result))


if __name__ == "__main__":
  main()
