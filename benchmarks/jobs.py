r"""Whole jobs, timed as a user runs them, against PyTorch's bare training (issue 27).

  python benchmarks/jobs.py                                # cvae, cgan, beta_vae; this tree
  python benchmarks/jobs.py --configs=cvae --checkouts=.,/tmp/kjax_before
  python benchmarks/jobs.py --configs=cvae --torch=cvae:100,beta_vae:25   # needs '.[bench]'

Each job is the README's command, ``launch.py --config=configs/<name>.py
--flagfile=configs/kmnist_offline.flags`` (the real KMNIST test split here: 8,000 train and
2,000 eval images), in a process of its own, run from each checkout (``PYTHONPATH`` = the
checkout, so an older commit runs its own code with this virtual environment), into a fresh
workdir. ``--cache=cold`` (default) gives every job an empty ``KJAX_CACHE_DIR`` (no compiled
programs, no cached CAS reference or features: a fresh machine); ``warm`` runs each job
twice on one cache and times the second. The checkouts alternate from config to config.

``--torch=MODEL:EPOCHS`` times ``benchmarks/torch_reference.py``'s port of the model
trained for that many epochs of 8,000 synthetic images (the split's size), in a process of
its own: the whole process and the loop alone (no evaluation, no checkpoints, no figures).

Prints one JSON line per job and a Markdown table: wall seconds, the phases of the run's
``timing.json`` (training, final figures, evaluation and its parts).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_job(checkout: str, config: str, cache: str) -> dict:
  """One job of ``config`` from ``checkout``, timed; its ``timing.json`` phases."""
  checkout = os.path.abspath(checkout)
  with tempfile.TemporaryDirectory() as tmp:
    env = {**os.environ, "PYTHONPATH": checkout, "KJAX_CACHE_DIR": os.path.join(tmp, "cache")}
    command = [sys.executable, "launch.py", f"--config=configs/{config}.py",
               "--flagfile=configs/kmnist_offline.flags"]
    if cache == "warm":  # the first job fills the cache; the second is timed
      subprocess.run(command + [f"--workdir={tmp}/warmup"], cwd=checkout, env=env,
                     check=True, capture_output=True)
    t0 = time.perf_counter()
    done = subprocess.run(command + [f"--workdir={tmp}/run"], cwd=checkout, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
      raise SystemExit(f"{config} from {checkout} failed ({done.returncode}):\n"
                       + done.stderr[-3000:])
    with open(os.path.join(tmp, "run", "timing.json")) as f:
      phases = json.load(f).get("phases_s", {})
  parts = phases.get("evaluation_parts", {})
  return {"config": config, "checkout": checkout, "cache": cache, "wall_s": round(wall, 1),
          "training_s": phases.get("training"), "final_figures_s": phases.get("final_figures"),
          "evaluation_s": phases.get("evaluation"),
          "evaluation_parts_s": {k: v for k, v in sorted(parts.items(), key=lambda kv: -kv[1])
                                 if v >= 0.5}}


def torch_worker(model: str, epochs: int) -> dict:
  """``--torch_worker``: PyTorch's bare training of ``epochs`` epochs, in this process."""
  t0 = time.perf_counter()
  sys.path.insert(0, HERE)
  import numpy as np  # noqa: PLC0415
  import compare  # noqa: PLC0415
  import torch_reference  # noqa: PLC0415
  num_images = 8000
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (num_images, 28, 28, 1), dtype=np.uint8)
  labels = rng.integers(0, 10, num_images).astype(np.int32)
  styles = rng.integers(0, 2, num_images).astype(np.int32)
  run = compare.torch_runner(model, images, labels, styles, 10, "cpu", False)
  steps = epochs * (num_images // torch_reference.BATCH_SIZES[model])
  t1 = time.perf_counter()
  for _ in range(steps):
    run()
  return {"torch": model, "epochs": epochs, "loop_s": round(time.perf_counter() - t1, 1),
          "process_s": round(time.perf_counter() - t0, 1)}


def run_torch(model: str, epochs: int) -> dict:
  """``torch_worker`` in a fresh process; its whole wall time too."""
  t0 = time.perf_counter()
  out = subprocess.run([sys.executable, __file__, f"--torch_worker={model}:{epochs}"],
                       capture_output=True, text=True, check=True)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  result["wall_s"] = round(time.perf_counter() - t0, 1)
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default="cvae,cgan,beta_vae")
  parser.add_argument("--checkouts", default=".")
  parser.add_argument("--cache", choices=("cold", "warm"), default="cold")
  parser.add_argument("--torch", default="", help="MODEL:EPOCHS,... (needs torch)")
  parser.add_argument("--torch_worker", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.torch_worker:
    model, epochs = args.torch_worker.split(":")
    print(json.dumps(torch_worker(model, int(epochs))), flush=True)
    return
  rows = []
  checkouts = args.checkouts.split(",")
  for i, config in enumerate(c for c in args.configs.split(",") if c):
    for checkout in checkouts[i % 2:] + checkouts[:i % 2]:  # alternate the order
      rows.append(run_job(checkout, config, args.cache))
      print(json.dumps(rows[-1]), flush=True)
  for item in (t for t in args.torch.split(",") if t):
    model, epochs = item.split(":")
    print(json.dumps(run_torch(model, int(epochs))), flush=True)
  print("\n| job | checkout | wall s | training s | evaluation s | largest evaluation parts s |")
  print("|---|---|---:|---:|---:|---|")
  for r in rows:
    parts = ", ".join(f"{k} {v:.1f}" for k, v in list(r["evaluation_parts_s"].items())[:4])
    print(f"| {r['config']} | {os.path.basename(r['checkout'])} | {r['wall_s']:.0f} | "
          f"{r['training_s'] or 0:.1f} | {r['evaluation_s'] or 0:.1f} | {parts} |")


if __name__ == "__main__":
  main()
