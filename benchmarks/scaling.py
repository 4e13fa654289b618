r"""Scaling benchmark: images/s of a sweep and of a data-parallel run on 1, 2, 4 and 8 devices.

  python benchmarks/scaling.py                          # CPU: virtual devices, MLP CVAE
  python benchmarks/scaling.py --devices=1,2,4,8 --model=beta_vae --seconds=10
  python benchmarks/scaling.py --platform=gpu           # the GPUs there are (1..N)

For each device count it starts a fresh process (JAX fixes its devices when it starts; on
CPU ``--xla_force_host_platform_device_count``) and times the compiled train programs of
``kjax.train`` on the ``kjax.sharding`` mesh, steady state after warm-up, on synthetic
uint8 images with K49's 49 classes:

* ``sweep``: ``--runs`` runs (own seeds) vmapped in one program, runs over the ``runs`` axis;
* ``data_parallel``: one run with a batch of ``--batch_size`` × devices (weak scaling: the
  per-device batch is fixed), the batch over the ``data`` axis.

Prints one JSON line per (workload, devices) with total images/s and the scaling efficiency
``rate(n) / (n · rate(1))``. Virtual CPU devices share the same cores: there the efficiency
measures the partitioning overhead, not a speed-up (ideal is 1/n); real devices (GPUs) can
reach 1.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"beta_vae": ("beta_vae", {}), "cvae": ("cvae", {"architecture": "mlp"}),
          "cgan": ("cgan", {"architecture": "mlp_large"})}


def worker(args) -> dict:
  """Runs in a fresh process with ``args.devices`` devices; returns its measurements."""
  import jax  # noqa: PLC0415
  if args.platform == "cpu":
    jax.config.update("jax_num_cpu_devices", args.devices)
  import numpy as np  # noqa: PLC0415
  from kjax import rng as krng  # noqa: PLC0415
  from kjax import sharding  # noqa: PLC0415
  from kjax import tasks  # noqa: PLC0415
  from kjax import train  # noqa: PLC0415

  devices = jax.devices()[:args.devices]
  if len(devices) < args.devices:
    return {"devices": args.devices, "skipped": f"only {len(devices)} device(s)"}
  name, overrides = MODELS[args.model]
  config = importlib.import_module(f"configs.{name}").get_config()
  config.data.name = "k49"
  for k, v in overrides.items():
    config.model[k] = v
  out = {"devices": args.devices, "device": devices[0].device_kind, "model": args.model}
  gen = np.random.default_rng(0)
  n_images = 8192

  def measure(num_runs: int, batch_size: int) -> tuple[float, dict]:
    task = tasks.get_task(config, n_images)
    mesh = sharding.make_mesh(num_runs, devices=devices)
    data = train.device_data(types.SimpleNamespace(
        images=gen.integers(0, 256, (n_images, 28, 28, 1), dtype=np.uint8),
        labels=gen.integers(0, task.info.num_classes, n_images),
        styles=gen.integers(0, 2, n_images)), mesh)
    keys = [krng.stream_keys(seed) for seed in range(num_runs)]
    states = [task.init_state(k["init"]) for k in keys]
    sums = [train.zero_sums(task.train_metrics) for _ in keys]
    perms = [jax.random.permutation(k["data"], n_images) for k in keys]
    stacked = num_runs > 1
    spec = sharding.P(sharding.RUNS) if stacked else sharding.P()

    def on_mesh(items):
      items = sharding.pad_runs(items, mesh) if stacked else items
      return sharding.put(train.stack(items) if stacked else items[0], mesh, spec)

    state, sum_tree = on_mesh(states), on_mesh(sums)
    perm, key = on_mesh(perms), on_mesh([k["train"] for k in keys])
    steps = args.steps_per_call
    chunk = train.make_train_chunk(
        task.train_step, n_images // batch_size, batch_size, steps,
        "vmap" if stacked else None, mesh=mesh)
    state, sum_tree = chunk(state, sum_tree, data, perm, key)  # compile + warm-up
    jax.block_until_ready(state)
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds or calls < 2:
      state, sum_tree = sharding.settle(chunk(state, sum_tree, data, perm, key), mesh)
      calls += 1
    jax.block_until_ready(state)
    rate = calls * steps * batch_size * num_runs / (time.perf_counter() - t0)
    return rate, dict(mesh.shape)

  rate, mesh = measure(args.runs, args.batch_size)
  out["sweep"] = {"images_per_s": round(rate), "runs": args.runs, "mesh": mesh}
  rate, mesh = measure(1, args.batch_size * args.devices)
  out["data_parallel"] = {"images_per_s": round(rate), "batch": args.batch_size * args.devices,
                          "mesh": mesh}
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--devices", default="1,2,4,8")
  parser.add_argument("--model", default="cvae", choices=sorted(MODELS))
  parser.add_argument("--runs", type=int, default=8, help="runs of the sweep workload")
  parser.add_argument("--batch_size", type=int, default=128, help="per-device batch (weak "
                      "scaling) of the data-parallel run; each sweep run's batch")
  parser.add_argument("--steps_per_call", type=int, default=1)
  parser.add_argument("--seconds", type=float, default=5.0)
  parser.add_argument("--platform", default="cpu", choices=("cpu", "gpu"))
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    args.devices = int(args.devices)
    print("RESULT " + json.dumps(worker(args)), flush=True)
    return
  base = {}
  for n in [int(d) for d in args.devices.split(",")]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"--devices={n}",
           f"--model={args.model}", f"--runs={args.runs}", f"--batch_size={args.batch_size}",
           f"--steps_per_call={args.steps_per_call}", f"--seconds={args.seconds}",
           f"--platform={args.platform}"]
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if args.platform == "cpu":
      env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
      print(json.dumps({"devices": n, "error": proc.stderr[-500:]}), flush=True)
      continue
    result = json.loads(lines[-1][len("RESULT "):])
    for workload in ("sweep", "data_parallel"):
      if workload in result:
        base.setdefault(workload, result[workload]["images_per_s"] if n == 1 else None)
        if base[workload]:
          result[workload]["efficiency"] = round(
              result[workload]["images_per_s"] / (n * base[workload]), 3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
