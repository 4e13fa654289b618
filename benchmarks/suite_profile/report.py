"""Summarises a profiled suite run (``plugin.py``): the slowest tests and files, compile
seconds per file (this process and its subprocesses), and the ``launch.py`` subprocesses.

    python benchmarks/suite_profile/report.py PROFILE.jsonl [--top 25]
"""

import argparse
import collections
import json


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("profile")
  parser.add_argument("--top", type=int, default=25)
  args = parser.parse_args()
  rows = [json.loads(line) for line in open(args.profile) if line.strip()]
  tests = collections.defaultdict(float)
  files = collections.defaultdict(lambda: collections.Counter())
  for r in rows:
    if "phase" in r:
      tests[r["test"]] += r["duration"]
      files[r["test"].split("::")[0]]["wall_s"] += r["duration"]
  sub_launches = collections.Counter()
  subprocesses = collections.Counter()
  for r in rows:
    if "compile_s" not in r or not r.get("test"):
      continue
    f = files[r["test"].split("::")[0]]
    if r.get("root"):
      f["compile_s"] += r["compile_s"]
      f["trace_lower_s"] += r["trace_s"] + r["lower_s"]
      f["compiles"] += r["compiles"]
    else:
      f["sub_compile_s"] += r["compile_s"]
      f["sub_trace_lower_s"] += r["trace_s"] + r["lower_s"]
      f["subprocesses"] += 1
      f["sub_wall_s"] += r["wall_s"]
      argv = " ".join(r.get("argv") or [])
      if "launch.py" in argv or argv.endswith("/kjax") or "scale_out_job" in argv:
        f["launches"] += 1
  total = sum(tests.values())
  print(f"{len(tests)} tests, {total:.0f} s in setup+call+teardown\n")
  print(f"## The {args.top} slowest tests\n\n| s | test |\n|---:|---|")
  for name, s in sorted(tests.items(), key=lambda kv: -kv[1])[:args.top]:
    print(f"| {s:.1f} | `{name}` |")
  print(f"\n## Files\n\n| file | wall s | compile s (in pytest) | trace+lower s | compiles "
        "| subprocesses | of which launches | subprocess wall s | subprocess compile s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
  sums = collections.Counter()
  for name, f in sorted(files.items(), key=lambda kv: -kv[1]["wall_s"]):
    sums.update(f)
    print(f"| {name} | {f['wall_s']:.0f} | {f['compile_s']:.0f} | {f['trace_lower_s']:.0f} | "
          f"{f['compiles']} | {f['subprocesses']} | {f['launches']} | {f['sub_wall_s']:.0f} | "
          f"{f['sub_compile_s']:.0f} |")
  print(f"| **all** | {sums['wall_s']:.0f} | {sums['compile_s']:.0f} | "
        f"{sums['trace_lower_s']:.0f} | {sums['compiles']} | {sums['subprocesses']} | "
        f"{sums['launches']} | {sums['sub_wall_s']:.0f} | {sums['sub_compile_s']:.0f} |")


if __name__ == "__main__":
  main()
