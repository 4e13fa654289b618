r"""kjax against an idiomatic PyTorch port of the same models: each framework in its own
process, alternated, and (for reference) both in one process.

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

Two thread pools in one process (XLA's and PyTorch's OpenMP, which spins after each call)
can slow either side, so by default (``--mode=both``) each round also runs each framework
in a fresh process of its own (``--worker``), the order alternating from round to round,
and the table gives both ratios: *separate processes* (the fair one) and *one process*.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/
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
  import torch  # noqa: PLC0415  (the optional 'bench' extra; never in a kjax worker)
  import torch_reference  # noqa: PLC0415
  torch.set_num_threads(os.cpu_count())
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


def _runner(name: str, model: str, num_images: int, device: str, platform: str):
  """``(run, images per call, compile_s)`` of ``name`` (``kjax``, ``torch eager`` or
  ``torch.compile``) for ``model`` on the synthetic split."""
  config = kjax_config(model)
  batch_size = config.train.batch_size
  num_classes = catalog.get_dataset_info(config.data.name).num_classes
  split = train_step.synthetic_split(num_images, num_classes)
  if name == "kjax":
    steps_per_call = autotune.steps_per_call(config.train.steps_per_call,
                                             num_images // batch_size, platform,
                                             tasks.has_convolutions(config.model))
    run, compile_s = train_step.kjax_runner(config, steps_per_call, split=split)
    return run, steps_per_call * batch_size, compile_s
  run = torch_runner(model, split["images"], split["labels"], split["styles"], num_classes,
                     device, name == "torch.compile")
  return run, batch_size, 0.0


def worker(name: str, model: str, seconds: float, num_images: int) -> dict:
  """One timing window of ``name`` alone in this process (``--worker``): images/s."""
  platform = jax.default_backend()
  run, per_call, compile_s = _runner(name, model, num_images,
                                     "cuda" if platform == "gpu" else "cpu", platform)
  calls, elapsed = timed(run, seconds)
  return {"images_per_s": calls * per_call / elapsed, "compile_s": compile_s}


def separate(model: str, names: list[str], rounds: int, seconds: float, num_images: int
             ) -> dict[str, list[float]]:
  """images/s of each framework in ``names``, one fresh process per window, the order
  alternating from round to round."""
  rates = {name: [] for name in names}
  for r in range(rounds):
    for name in (names if r % 2 == 0 else names[::-1]):
      out = subprocess.run([sys.executable, os.path.abspath(__file__), f"--worker={name}",
                            f"--models={model}", f"--seconds={seconds}",
                            f"--num_images={num_images}"],
                           capture_output=True, text=True, check=True)
      rates[name].append(json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"])
  return rates


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--seconds", type=float, default=8.0, help="per timing window")
  parser.add_argument("--num_images", type=int, default=8000)
  parser.add_argument("--torch_compile", action="store_true", help="add a torch.compile row")
  parser.add_argument("--markdown", default="", help="also write the table to this file")
  parser.add_argument("--mode", default="both", choices=("both", "separate", "one_process"))
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(worker(args.worker, args.models, args.seconds, args.num_images)))
    return

  import torch  # noqa: PLC0415  (for the header; the workers import it apart)
  platform = jax.default_backend()
  device = "cuda" if platform == "gpu" else "cpu"
  threads = os.cpu_count()
  rows = []
  for model in args.models.split(","):
    if args.mode != "one_process":
      names = ["kjax", "torch eager"] + (["torch.compile"] if args.torch_compile else [])
      apart = separate(model, names, args.rounds, args.seconds, args.num_images)
      med_apart = {name: statistics.median(r) for name, r in apart.items()}
      print(f"{model} (separate processes): "
            + ", ".join(f"{n} {[round(x) for x in r]}" for n, r in apart.items()), flush=True)
      if args.mode == "separate":
        rows.append({"model": model, "batch": kjax_config(model).train.batch_size,
                     "steps_per_call": "", "kjax": med_apart["kjax"],
                     "torch": med_apart["torch eager"], "ratio": med_apart["kjax"]
                     / med_apart["torch eager"], "compile_s": 0.0,
                     "ratio_separate": med_apart["kjax"] / med_apart["torch eager"]})
        continue
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
    if args.mode == "both":
      row["kjax_separate"], row["torch_separate"] = med_apart["kjax"], med_apart["torch eager"]
      row["ratio_separate"] = med_apart["kjax"] / med_apart["torch eager"]
    rows.append(row)
    print(f"{model}: " + ", ".join(f"{n} {[round(x) for x in r]}" for n, r in rates.items()),
          flush=True)

  device_name = jax.devices()[0].device_kind
  header = (f"{platform} ({device_name}), {threads} threads, jax {jax.__version__}, "
            f"torch {torch.__version__}; medians of {args.rounds} alternated windows of "
            f"{args.seconds:g} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
  with_compile = any("torch_compile" in r for r in rows)
  lines = [header, "",
           "| model | batch | kjax images/s, separate | PyTorch eager images/s, separate | "
           "kjax / eager, separate processes | kjax / eager, one process |"
           + (" torch.compile images/s | kjax / compile |" if with_compile else "")
           + " kjax steps/call | kjax compile s |",
           "|---|---|---|---|---|---|" + ("---|---|" if with_compile else "") + "---|---|"]
  for r in rows:
    compiled = (f" {r['torch_compile']:,.0f} | {r['ratio_compile']:.2f}× |"
                if "torch_compile" in r else (" – | – |" if with_compile else ""))
    apart = (f"{r.get('kjax_separate', r['kjax']):,.0f} | "
             f"{r.get('torch_separate', r['torch']):,.0f} | {r['ratio_separate']:.2f}×"
             if "ratio_separate" in r else "– | – | –")
    one = "–" if args.mode == "separate" else f"{r['ratio']:.2f}×"
    lines.append(f"| {r['model']} | {r['batch']} | {apart} | {one} |{compiled} "
                 f"{r['steps_per_call']} | {r['compile_s']:.1f} |")
  table = "\n".join(lines)
  print(table)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(table + "\n")


if __name__ == "__main__":
  main()
