r"""What the persistent compilation cache (``kjax.compile_cache``) saves a second launch.

  python benchmarks/compile_cache.py                  # both jobs, 1 epoch each
  python benchmarks/compile_cache.py --jobs=main --epochs=1

Each job is launched three times, each time as its own ``launch.py`` process in a fresh
workdir, sharing one fresh cache folder: with the cache off (``KJAX_COMPILATION_CACHE=0``),
with the cache on and empty (the first launch on a machine), and with the cache on and
warm (every later launch). Jobs:

- ``main``: the β-VAE main job (``configs/beta_vae.py`` on the offline KMNIST split,
  ``configs/kmnist_offline.flags``), ``--epochs`` epochs, the final evaluation off.
  The train step of a 1-epoch run is the 25-epoch job's program (the chunk does not
  depend on the epoch count).
- ``sweep_part``: part 2 of 2 of a CVAE sweep (``configs/cvae_sweep.py``, MLP, latent
  2, seeds 0–3, ``--config.sweep.shard=1/2``) after part 1 ran: a scheduler's next part.

Prints one JSON line per launch: the train step's compile seconds (``timing.json``
``compile_s``; a sweep part's ``timing.part-2-of-2.json``), cache hits/misses, the whole
launch's wall seconds.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(config, workdir, flags, env):
  t0 = time.perf_counter()
  result = subprocess.run([sys.executable, os.path.join(REPO, "launch.py"),
                           f"--config=configs/{config}.py", f"--workdir={workdir}",
                           "--flagfile=configs/kmnist_offline.flags", *flags],
                          cwd=REPO, env=env, capture_output=True, text=True)
  if result.returncode:
    sys.exit(result.stderr[-3000:])
  return time.perf_counter() - t0


def _main_job(root, env, epochs):
  workdir = os.path.join(root, "main")
  wall = _launch("beta_vae", workdir, [f"--config.train.num_epochs={epochs}",
                                       "--config.eval.at_end_of_training=False"], env)
  with open(os.path.join(workdir, "timing.json")) as f:
    return json.load(f), wall


def _sweep_part(root, env, epochs):
  workdir = os.path.join(root, "sweep")
  flags = [f"--config.train.num_epochs={epochs}", "--config.eval.at_end_of_training=False",
           "--config.sweep.architecture=('mlp',)", "--config.sweep.latent_dim=(2,)",
           "--config.sweep.seed=(0,1,2,3)"]
  # Part 1 in a process of its own (with the same cache setting), then part 2 is timed.
  _launch("cvae_sweep", workdir, [*flags, "--config.sweep.shard=0/2"], env)
  wall = _launch("cvae_sweep", workdir, [*flags, "--config.sweep.shard=1/2"], env)
  runs = os.path.join(workdir, "runs")
  part = [r for r in sorted(os.listdir(runs)) if r.endswith("seed=1")][0]
  with open(os.path.join(runs, part, "timing.json")) as f:
    return json.load(f), wall


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--jobs", default="main,sweep_part")
  parser.add_argument("--epochs", type=int, default=1)
  args = parser.parse_args()
  jobs = {"main": _main_job, "sweep_part": _sweep_part}
  for job in args.jobs.split(","):
    cache = tempfile.mkdtemp(prefix="kjax-bench-cache-")
    try:
      for name, extra in (("off", {"KJAX_COMPILATION_CACHE": "0"}), ("cold", {}),
                          ("warm", {})):
        root = tempfile.mkdtemp(prefix=f"kjax-bench-{job}-{name}-")
        env = {**os.environ, "KJAX_CACHE_DIR": cache, **extra}
        timing, wall = jobs[job](root, env, args.epochs)
        print(json.dumps({"job": job, "cache": name, "compile_s": round(timing["compile_s"], 2),
                          "compile_cache": timing.get("compile_cache"),
                          "launch_wall_s": round(wall, 1)}), flush=True)
        shutil.rmtree(root, ignore_errors=True)
    finally:
      shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
  main()
