r"""kjax against an idiomatic PyTorch port of the same models, side by side, in one process.

  pip install -e '.[bench]'                        # torch (the CPU build lies on disk here)
  PYTHONPATH=. python benchmarks/compare.py        # β-VAE, CVAE, CGAN; ~2 min on 2 cores
  PYTHONPATH=. python benchmarks/compare.py --models=beta_vae --rounds=5 --torch_compile
  PYTHONPATH=. python benchmarks/compare.py --markdown=/tmp/compare.md

For each model (``benchmarks/torch_reference.py`` says what each port computes) it times
kjax's compiled train chunk (the program ``kjax.train`` runs, with
``config.train.steps_per_call`` resolved as a run would) and the PyTorch step, alternately,
``--rounds`` times ``--seconds`` each, on the same synthetic uint8 images and labels (K49's
49 classes for the conditional models), at the source documents' batch sizes, on the same
platform (CPU, or CUDA when JAX's default backend is a GPU) and thread count. It prints one table:
median images/s of each, and kjax's ratio over PyTorch eager (and ``torch.compile`` with
``--torch_compile``, where it works), with kjax's compile time and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/
import torch  # noqa: E402  (the optional 'bench' extra)
import torch_reference  # noqa: E402
import train_step  # noqa: E402

from kjax import autotune  # noqa: E402
from kjax import tasks  # noqa: E402
from kjax.data import catalog  # noqa: E402

MODELS = ("beta_vae", "cvae", "cgan")
# The networks of the source documents: Islam's "Beyond Pixels" tutorial and Ahmed (2025) for
# the β-VAE; Shyam (2024), "Conditional Generation with VAE and GAN", for the MLP CVAE and
# CGAN, on K49.
OVERRIDES = {
    "beta_vae": {},
    "cvae": {"data.name": "k49", "model.architecture": "mlp"},
    "cgan": {"data.name": "k49", "model.architecture": "mlp", "model.output": "tanh"},
}


def kjax_config(model: str):
  """``configs/<model>.py`` with its source document's network (``OVERRIDES``)."""
  config = importlib.import_module(f"configs.{model}").get_config()
  for key, value in OVERRIDES[model].items():
    section, field = key.split(".")
    config[section][field] = value
  return config


def torch_runner(model: str, images: np.ndarray, labels: np.ndarray, styles: np.ndarray,
                 num_classes: int, device: str, compile: bool):
  """``run()`` = one PyTorch train step on the next batch of a shuffled epoch."""
  step = torch_reference.make_trainer(model, num_classes, device, compile)
  images_t = torch.from_numpy(images).to(device)
  labels_t = torch.from_numpy(labels.astype(np.int64)).to(device)
  styles_t = torch.from_numpy(styles.astype(np.int64)).to(device)
  batch_size = torch_reference.BATCH_SIZES[model]
  per_epoch = len(images) // batch_size
  state = {"i": 0, "perm": torch.randperm(len(images), device=device)}

  def run():
    if state["i"] == per_epoch:
      state["i"], state["perm"] = 0, torch.randperm(len(images), device=device)
    rows = state["perm"][state["i"] * batch_size:(state["i"] + 1) * batch_size]
    state["i"] += 1
    step(images_t[rows], labels_t[rows], styles_t[rows])

  run.sync = (torch.cuda.synchronize if device == "cuda" else (lambda: None))
  for _ in range(5):  # warm-up (and torch.compile's tracing)
    run()
  run.sync()
  return run


def timed(run, seconds: float) -> int:
  """Calls ``run`` for ``seconds`` (then waits for it); returns the number of calls."""
  calls, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < seconds:
    run()
    calls += 1
  run.sync()
  return calls, time.perf_counter() - t0


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--seconds", type=float, default=8.0, help="per timing window")
  parser.add_argument("--num_images", type=int, default=8000)
  parser.add_argument("--torch_compile", action="store_true", help="add a torch.compile row")
  parser.add_argument("--markdown", default="", help="also write the table to this file")
  args = parser.parse_args()

  platform = jax.default_backend()
  device = "cuda" if platform == "gpu" else "cpu"
  threads = os.cpu_count()
  torch.set_num_threads(threads)
  rows = []
  for model in args.models.split(","):
    config = kjax_config(model)
    batch_size = config.train.batch_size
    steps_per_call = autotune.steps_per_call(config.train.steps_per_call,
                                             args.num_images // batch_size, platform,
                                             tasks.has_convolutions(config.model))
    num_classes = catalog.get_dataset_info(config.data.name).num_classes
    split = train_step.synthetic_split(args.num_images, num_classes)
    run_kjax, compile_s = train_step.kjax_runner(config, steps_per_call, split=split)
    images, labels, styles = split["images"], split["labels"], split["styles"]
    runners = {"kjax": (run_kjax, steps_per_call * batch_size),
               "torch eager": (torch_runner(model, images, labels, styles, num_classes,
                                            device, False), batch_size)}
    if args.torch_compile:
      try:
        runners["torch.compile"] = (torch_runner(model, images, labels, styles, num_classes,
                                                 device, True), batch_size)
      except Exception as e:  # noqa: BLE001  (reported, not fatal: compile needs a C++ toolchain)
        print(f"{model}: torch.compile failed: {type(e).__name__}: {str(e)[:200]}")
    rates = {name: [] for name in runners}
    for _ in range(args.rounds):
      for name, (run, images_per_call) in runners.items():
        calls, elapsed = timed(run, args.seconds)
        rates[name].append(calls * images_per_call / elapsed)
    med = {name: statistics.median(r) for name, r in rates.items()}
    row = {"model": model, "batch": batch_size, "steps_per_call": steps_per_call,
           "kjax": med["kjax"], "torch": med["torch eager"],
           "ratio": med["kjax"] / med["torch eager"], "compile_s": compile_s}
    if "torch.compile" in med:
      row["torch_compile"] = med["torch.compile"]
      row["ratio_compile"] = med["kjax"] / med["torch.compile"]
    rows.append(row)
    print(f"{model}: " + ", ".join(f"{n} {[round(x) for x in r]}" for n, r in rates.items()),
          flush=True)

  device_name = jax.devices()[0].device_kind
  header = (f"{platform} ({device_name}), {threads} threads, jax {jax.__version__}, "
            f"torch {torch.__version__}; medians of {args.rounds} alternated windows of "
            f"{args.seconds:g} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
  with_compile = any("torch_compile" in r for r in rows)
  lines = [header, "",
           "| model | batch | kjax images/s | PyTorch eager images/s | kjax / eager |"
           + (" torch.compile images/s | kjax / compile |" if with_compile else "")
           + " kjax steps/call | kjax compile s |",
           "|---|---|---|---|---|" + ("---|---|" if with_compile else "") + "---|---|"]
  for r in rows:
    compiled = (f" {r['torch_compile']:,.0f} | {r['ratio_compile']:.2f}× |"
                if "torch_compile" in r else (" – | – |" if with_compile else ""))
    lines.append(f"| {r['model']} | {r['batch']} | {r['kjax']:,.0f} | {r['torch']:,.0f} | "
                 f"{r['ratio']:.2f}× |{compiled} {r['steps_per_call']} | {r['compile_s']:.1f} |")
  table = "\n".join(lines)
  print(table)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(table + "\n")


if __name__ == "__main__":
  main()
