r"""Everything GPU-related in one command: tests, kjax vs PyTorch, full-size runs, one table.

  bash benchmarks/gpu_check.sh OUT.md            # on a GPU machine (installs what is missing)
  python benchmarks/gpu_check.py --out=OUT.md    # the same, once kjax is installed
  python benchmarks/gpu_check.py --out=OUT.md --small   # CPU-sized, for its own test

In order, each step timed and recorded even if one fails (its error goes in the table):

1. the platform (JAX's devices, versions);
2. the test suite on the default device (``pytest -q -x``, with a time limit);
3. ``benchmarks/compare.py``: kjax vs PyTorch eager per train step (when torch imports);
4. the main job at full size: the 25-epoch β-VAE with its whole default evaluation (the
   shipped reference evaluator) on KMNIST's 60,000 training images (synthetic official-format
   files, ``benchmarks/synthetic_data.py``: the real training split is not offline);
5. the CVAE of Shyam (2024), "Conditional Generation with VAE and GAN", for 100 epochs at
   K49's size (232,365 synthetic images), training only;
6. the IWAE bound with k = 5000 on the full eval split (the β-VAE of step 4).

Goals on an H100 (issue 10): MLP steps ≥ 10× PyTorch eager, the β-VAE's 25 epochs ≤ 10 s
of training, the CVAE's 100 epochs ≤ 30 s. The table gives each wall time and the
``timing.json`` choices (steps per call, conv implementation).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import synthetic_data  # noqa: E402


def _run(cmd: list[str], timeout: float, log: str) -> tuple[int, float, str]:
  """Runs ``cmd`` in the repository root; returns (exit code, seconds, last output line)."""
  t0 = time.perf_counter()
  with open(log, "w") as f:
    try:
      rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                          timeout=timeout).returncode
    except subprocess.TimeoutExpired:
      rc = 124
  with open(log) as f:
    lines = [line.strip() for line in f if line.strip()]
  return rc, time.perf_counter() - t0, (lines[-1] if lines else "")


def _json(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def _rate(timing: dict) -> str:
  rate = timing.get("steady_images_per_s")
  return f"{rate:.0f} images/s steady" if rate else "too short for a steady rate"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="markdown file to write")
  parser.add_argument("--small", action="store_true", help="tiny sizes (CPU, its own test)")
  parser.add_argument("--skip_tests", action="store_true")
  parser.add_argument("--tests_timeout", type=float, default=240.0)
  parser.add_argument("--workdir", default="", help="default: a temporary folder")
  args = parser.parse_args()

  work = args.workdir or tempfile.mkdtemp(prefix="kjax_gpu_check_")
  os.makedirs(work, exist_ok=True)
  py = sys.executable
  small = args.small
  rows: list[tuple[str, str, str]] = []  # (step, result, seconds)

  def step(name, fn):
    t0 = time.perf_counter()
    try:
      result = fn()
    except Exception as e:  # noqa: BLE001  (recorded in the table; the next step runs)
      traceback.print_exc()
      result = f"FAILED: {type(e).__name__}: {str(e)[:300]}"
    rows.append((name, result, f"{time.perf_counter() - t0:.1f}"))
    print(f"gpu_check: {name}: {result}", flush=True)

  def platform():
    import jax  # noqa: PLC0415  (after the argument parsing, as the rest)
    d = jax.devices()
    return (f"{d[0].platform}: {len(d)} × {d[0].device_kind}; jax {jax.__version__}, "
            f"python {sys.version.split()[0]}")

  step("platform", platform)

  if not args.skip_tests:
    def tests():
      rc, secs, last = _run([py, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"],
                            args.tests_timeout, os.path.join(work, "pytest.log"))
      return f"exit {rc}: {last}" + (" (time limit)" if rc == 124 else "")
    step("test suite (pytest -q -x)", tests)

  def compare():
    try:
      import torch  # noqa: F401,PLC0415
    except ImportError:
      return "skipped: torch is not installed (pip install -e '.[bench]')"
    md = os.path.join(work, "compare.md")
    cmd = [py, "benchmarks/compare.py", f"--markdown={md}"]
    cmd += ["--rounds=1", "--seconds=1", "--num_images=1024"] if small else ["--rounds=3",
                                                                              "--seconds=4"]
    rc, _, last = _run(cmd, 300, os.path.join(work, "compare.log"))
    if rc:
      return f"exit {rc}: {last}"
    with open(md) as f:
      return "see the table below\n\n" + f.read()
  step("kjax vs PyTorch (benchmarks/compare.py)", compare)

  kmnist = synthetic_data.write(os.path.join(work, "kmnist"), "kmnist",
                                *((1024, 512) if small else (None, None)))
  data = [f"--config.data.data_dir={kmnist}", "--config.data.verify_checksums=False",
          "--config.data.cache_dir=" + os.path.join(work, "cache")]
  vae_dir = os.path.join(work, "beta_vae")

  def main_job():
    cmd = [py, "launch.py", "--config=configs/beta_vae.py", f"--workdir={vae_dir}", *data]
    if small:
      cmd += ["--config.train.num_epochs=1", "--config.eval.iwae_samples=50",
              "--config.eval.tsne_max_points=200", "--config.eval.kid_subset_size=100"]
    rc, secs, last = _run(cmd, 900, os.path.join(work, "beta_vae.log"))
    if rc:
      return f"exit {rc}: {last}"
    t = _json(os.path.join(vae_dir, "timing.json"))
    p = t["phases_s"]
    return (f"training {p['training']:.1f} s (compile {p['compile']:.1f}), evaluation "
            f"{p.get('evaluation', 0):.1f} s, whole job {secs:.1f} s; "
            f"{_rate(t)}; choices {t['choices']}")
  step("β-VAE main job, 25 epochs of 60,000 images + evaluation", main_job)

  def cvae():
    k49 = synthetic_data.write(os.path.join(work, "k49"), "k49",
                               *((2048, 512) if small else (None, None)))
    workdir = os.path.join(work, "cvae")
    cmd = [py, "launch.py", "--config=configs/cvae.py", f"--workdir={workdir}",
           f"--config.data.data_dir={k49}", "--config.data.verify_checksums=False",
           "--config.data.cache_dir=" + os.path.join(work, "cache"),
           "--config.eval.at_end_of_training=False", "--config.figures.progress_every_epochs=0"]
    cmd += ["--config.train.num_epochs=1"] if small else []
    rc, secs, last = _run(cmd, 900, os.path.join(work, "cvae.log"))
    if rc:
      return f"exit {rc}: {last}"
    t = _json(os.path.join(workdir, "timing.json"))
    return (f"training {t['wall_s']:.1f} s (compile {t['compile_s']:.1f}), "
            f"{_rate(t)}, whole command {secs:.1f} s; "
            f"choices {t['choices']}")
  step("CVAE (Shyam 2024), 100 epochs at K49's size", cvae)

  def iwae_full():
    cmd = [py, "launch.py", "--config=configs/beta_vae.py", f"--workdir={vae_dir}", *data,
           "--mode=evaluate", "--config.eval.iwae_max_examples=0"]
    if small:
      cmd += ["--config.train.num_epochs=1", "--config.eval.iwae_samples=50",
              "--config.eval.tsne_max_points=200"]
    rc, secs, last = _run(cmd, 900, os.path.join(work, "iwae.log"))
    if rc:
      return f"exit {rc}: {last}"
    m = _json(os.path.join(vae_dir, "eval", "metrics.json"))
    return (f"{m['timing_s']['likelihood']:.1f} s for k = {m['protocol']['iwae_samples']} on "
            f"{m['protocol']['iwae_examples']} images; iwae_nll {m['metrics']['iwae_nll']:.2f}")
  step("IWAE bound, k = 5000, full eval split", iwae_full)

  lines = ["# kjax GPU check", "", f"`python benchmarks/gpu_check.py{' --small' if small else ''}`"
           f", work folder `{work}`", "", "| step | result | seconds |", "|---|---|---|"]
  tables = []
  for name, result, secs in rows:
    head, _, rest = result.partition("\n\n")
    lines.append(f"| {name} | {head.replace('|', '/')} | {secs} |")
    if rest:
      tables.append(rest)
  with open(args.out, "w") as f:
    f.write("\n".join(lines + [""] + tables) + "\n")
  print(f"gpu_check: wrote {args.out}")
  if not args.workdir:
    shutil.rmtree(work, ignore_errors=True)
  return 0 if not any(r[1].startswith(("FAILED", "exit")) for r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
