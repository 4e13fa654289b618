r"""Benchmark of a kjax train step: steady-state images/s, compile time, peak memory.

  python benchmarks/train_step.py                          # β-VAE, configs/beta_vae.py
  python benchmarks/train_step.py --model=cvae             # Shyam (2024)'s CVAE, batch 100
  python benchmarks/train_step.py --model=cgan             # Shyam (2024)'s CGAN, batch 128
  python benchmarks/train_step.py --model=cgan --architecture=dcgan --steps_per_call=50
  python benchmarks/train_step.py --conv_impl=xla --steps_per_call=10

It times the same compiled program that ``kjax.train`` runs (batches gathered on the
device from a resident uint8 split, ``steps_per_call`` steps per dispatch), on synthetic
images with K49's 49 classes, on the default JAX platform, with the batch size of the
model's config unless ``--batch_size`` is given. Peak memory is the device allocator's
peak where the platform reports one (GPU/TPU), else the process's peak resident set size.
Prints one JSON line.
"""

import argparse
import importlib
import json
import os
import resource
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/
from kjax import autotune  # noqa: E402
from kjax import tasks
from kjax import rng as krng
from kjax import train
from kjax.models import conv


def synthetic_split(num_images: int, num_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
  """Random uint8 images ``[N, 28, 28, 1]`` with int32 labels and styles ``[N]``."""
  rng = np.random.default_rng(seed)
  return {"images": rng.integers(0, 256, (num_images, 28, 28, 1), dtype=np.uint8),
          "labels": rng.integers(0, num_classes, num_images).astype(np.int32),
          "styles": rng.integers(0, 2, num_images).astype(np.int32)}


def kjax_runner(config, steps_per_call: int, num_images: int = 8000, seed: int = 0,
                split: dict[str, np.ndarray] | None = None):
  """The compiled chunk that ``kjax.train`` runs for ``config``, on ``split`` (default:
  ``synthetic_split`` of ``num_images`` with the config's classes).

  Returns ``(run, compile_s)``: ``run()`` dispatches one call of ``steps_per_call`` train
  steps (asynchronously; ``run.sync()`` waits for it), warmed up by three calls;
  ``compile_s`` is the seconds ``lower().compile()`` took.
  """
  task = tasks.get_task(config, None)
  keys = krng.stream_keys(seed)
  if split is None:
    split = synthetic_split(num_images, task.info.num_classes, seed)
  num_images = len(split["images"])
  data = jax.device_put(split)
  perm = jax.random.permutation(keys["data"], num_images)
  batch_size = config.train.batch_size
  chunk = train.make_train_chunk(task.train_step, num_images // batch_size, batch_size,
                                 steps_per_call)
  carry = [task.init_state(keys["init"]), train.zero_sums(task.train_metrics)]
  t0 = time.perf_counter()
  compiled = chunk.lower(*carry, data, perm, keys["train"]).compile()
  compile_s = time.perf_counter() - t0

  def run():
    carry[:] = compiled(*carry, data, perm, keys["train"])

  run.sync = lambda: jax.block_until_ready(carry)
  for _ in range(3):  # warm-up
    run()
  run.sync()
  return run, compile_s


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="beta_vae", choices=tuple(tasks.TASKS))
  parser.add_argument("--dataset", default="k49", help="sets the number of classes")
  parser.add_argument("--batch_size", type=int, default=None, help="default: the config's")
  parser.add_argument("--latent_dim", type=int, default=None, help="default: the config's")
  parser.add_argument("--architecture", default=None, help="cvae/cgan; default: the config's")
  parser.add_argument("--loss", default=None, help="cgan: bce | hinge | wgan_gp")
  parser.add_argument("--upsample", default=None, choices=("conv_transpose", "subpixel"),
                      help="β-VAE; default: the config's")
  parser.add_argument("--conv_impl", default=None, choices=("auto", "xla", "matmul"),
                      help="conv models; default: the config's ('auto')")
  parser.add_argument("--channels", default=None, help="e.g. 32,64; default: the config's")
  parser.add_argument("--steps_per_call", default="auto", help="an integer or 'auto'")
  parser.add_argument("--num_images", type=int, default=8000)
  parser.add_argument("--seconds", type=float, default=20.0, help="timed duration")
  args = parser.parse_args()
  if args.upsample and args.model != "beta_vae":
    parser.error(f"--upsample={args.upsample} applies to --model=beta_vae only")

  config = importlib.import_module(f"configs.{args.model}").get_config()
  config.data.name = args.dataset
  if args.batch_size:
    config.train.batch_size = args.batch_size
  if args.latent_dim:
    config.model.latent_dim = args.latent_dim
  if args.architecture:
    config.model.architecture = args.architecture
  if args.loss:
    config.objective.loss = args.loss
  if args.channels:
    config.model.channels = tuple(int(c) for c in args.channels.split(","))
  if args.upsample:
    config.model.upsample = args.upsample
  if args.conv_impl:
    config.model.conv_impl = args.conv_impl
  batch_size = config.train.batch_size
  steps_per_call = autotune.steps_per_call(args.steps_per_call, args.num_images // batch_size,
                                           convolutional=tasks.has_convolutions(config.model))
  run, compile_s = kjax_runner(config, steps_per_call, args.num_images)
  calls, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < args.seconds:
    run()
    calls += 1
  run.sync()
  elapsed = time.perf_counter() - t0
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  peak = (stats or {}).get("peak_bytes_in_use")
  result = {
      "model": args.model, "platform": device.platform, "device": device.device_kind,
      "jax": jax.__version__, "batch_size": batch_size,
      "architecture": config.model.get("architecture", "conv"),
      "channels": list(config.model.channels), "steps_per_call": steps_per_call,
      "images_per_s": calls * steps_per_call * batch_size / elapsed,
      "compile_s": compile_s,
      "peak_memory_mib": (peak / 2**20 if peak else
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
      "peak_memory_kind": "device allocator" if peak else "process max RSS",
  }
  if args.model == "beta_vae":
    result["upsample"] = config.model.upsample
  if "conv_impl" in config.model:
    result["conv_impl"] = conv.resolve_impl(config.model.conv_impl)
  if args.model == "cgan":
    result["loss"] = config.objective.loss
  print(json.dumps(result))


if __name__ == "__main__":
  main()
