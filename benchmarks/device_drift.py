r"""How far a default-length run on 2 or 4 devices, or as 2 processes, drifts from 1 device.

  python benchmarks/device_drift.py                         # cvae (MLP), beta_vae (conv)
  python benchmarks/device_drift.py --configs=cvae --layouts=1,2,4,2x1

Each layout trains the README's job (``launch.py --config=configs/<name>.py
--flagfile=configs/kmnist_offline.flags``: 8,000 train / 2,000 eval KMNIST images, the
config's own epochs) without its final evaluation, in processes of its own, on virtual CPU
devices (``--xla_force_host_platform_device_count``): ``N`` is one process with N devices
(the batch split over them), ``PxD`` is P ``jax.distributed`` processes of D devices each
on 127.0.0.1. Compared with the 1-device run: every number of ``summary.json`` (the last
epoch's train and eval losses) and of ``metrics.jsonl`` (every epoch), as the largest
relative difference ``|a - b| / |b|``. The runs differ only in the order of float32 sums
over the split batch (the PRNG streams, data order and batches are the same), compounded by
training. Prints one JSON line per layout and a Markdown table.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int, cache: str) -> dict:
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
  flags.append(f"--xla_force_host_platform_device_count={devices}")
  return {**os.environ, "XLA_FLAGS": " ".join(flags), "KJAX_CACHE_DIR": cache}


def train(config: str, layout: str, workdir: str, cache: str, extra_flags=()) -> float:
  """Trains ``config`` in ``layout`` into ``workdir``; returns the wall seconds."""
  processes, devices = (int(x) for x in layout.split("x")) if "x" in layout else (1, int(layout))
  command = [sys.executable, "launch.py", f"--config=configs/{config}.py",
             "--flagfile=configs/kmnist_offline.flags", f"--workdir={workdir}",
             "--config.eval.at_end_of_training=False", *extra_flags]
  extra = [[]] if processes == 1 else [
      [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}",
       f"--process_id={i}"] for port in [_port()] for i in range(processes)]
  t0 = time.perf_counter()
  procs = [subprocess.Popen(command + e, cwd=REPO, env=_env(devices, cache),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
           for e in extra]
  for p in procs:
    _, err = p.communicate()
    if p.returncode:
      raise RuntimeError(f"{config} {layout}: exit {p.returncode}\n{err[-3000:]}")
  return time.perf_counter() - t0


def _numbers(workdir: str) -> dict[str, float]:
  out = {}
  with open(os.path.join(workdir, "summary.json")) as f:
    out.update({f"summary/{k}": v for k, v in json.load(f).items() if "/" in k})
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      out.update({f"epoch{row['epoch']}/{k}": v for k, v in row.items() if "/" in k})
  return out


def drift(workdir: str, reference: str) -> dict:
  """The largest relative differences of ``workdir``'s records from ``reference``'s."""
  got, want = _numbers(workdir), _numbers(reference)
  rel = {k: abs(got[k] - want[k]) / max(abs(want[k]), 1e-12) for k in want}
  last = {k: v for k, v in rel.items() if k.startswith("summary/")}
  worst = max(rel, key=rel.get)
  return {"max_rel": rel[worst], "where": worst, "final_max_rel": max(last.values()),
          "final_eval_nelbo_rel": rel.get("summary/eval/nelbo"), "identical": got == want}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default="cvae,beta_vae")
  parser.add_argument("--layouts", default="1,2,4,2x1", help="the first is the reference")
  parser.add_argument("--out", default="", help="also write the JSON lines here")
  parser.add_argument("--flags", default="", help="more launch.py flags, space-separated "
                      "(a quick check: --flags=--config.train.num_epochs=1)")
  args = parser.parse_args()
  layouts = args.layouts.split(",")
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for config in args.configs.split(","):
      cache = os.path.join(tmp, f"cache-{config}")
      runs = {}
      for layout in layouts:
        runs[layout] = os.path.join(tmp, f"{config}-{layout}")
        seconds = train(config, layout, runs[layout], cache, args.flags.split())
        row = {"config": config, "layout": layout, "wall_s": round(seconds, 1)}
        if layout != layouts[0]:
          row.update(drift(runs[layout], runs[layouts[0]]))
        rows.append(row)
        print(json.dumps(row), flush=True)
  if args.out:
    with open(args.out, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in rows)
  print("\n| config | layout | largest relative difference (epoch, metric) | last epoch's "
        "largest | eval/nelbo at the end | wall s |\n|---|---|---|---|---|---|")
  for r in rows:
    if "max_rel" in r:
      print(f"| {r['config']} | {r['layout']} | {r['max_rel']:.1e} ({r['where']}) | "
            f"{r['final_max_rel']:.1e} | {r['final_eval_nelbo_rel']:.1e} | {r['wall_s']} |")
    else:
      print(f"| {r['config']} | {r['layout']} (reference) | | | | {r['wall_s']} |")


if __name__ == "__main__":
  main()
