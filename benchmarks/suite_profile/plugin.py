"""A pytest plugin that attributes compile time to test files, in this process and in every
Python subprocess the tests start.

    PYTHONPATH=benchmarks/suite_profile KJAX_SUITE_PROFILE=/tmp/p.jsonl \
      pytest -q -p plugin --durations=25

then ``python benchmarks/suite_profile/report.py /tmp/p.jsonl``.
"""

import json
import os

import jax.monitoring

_PATH = os.environ["KJAX_SUITE_PROFILE"]
os.environ["KJAX_SUITE_PROFILE_ROOT"] = str(os.getpid())
_current = {"test": ""}
_totals = {}


def _listener(event, duration, **_):
  t = _totals.setdefault(_current["test"], {"compile_s": 0.0, "trace_s": 0.0,
                                             "lower_s": 0.0, "compiles": 0})
  if event.endswith("backend_compile_duration"):
    t["compile_s"] += duration
    t["compiles"] += 1
  elif event.endswith("jaxpr_trace_duration"):
    t["trace_s"] += duration
  elif event.endswith("jaxpr_to_mlir_module_duration"):
    t["lower_s"] += duration


jax.monitoring.register_event_duration_secs_listener(_listener)


def pytest_runtest_logstart(nodeid, location):
  _current["test"] = nodeid
  os.environ["KJAX_SUITE_PROFILE_TEST"] = nodeid


def pytest_runtest_logreport(report):
  if report.when == "teardown" or report.when == "call" or report.when == "setup":
    with open(_PATH, "a") as f:
      f.write(json.dumps({"phase": report.when, "test": report.nodeid,
                          "duration": report.duration}) + "\n")


def pytest_sessionfinish(session):
  with open(_PATH, "a") as f:
    for test, t in _totals.items():
      f.write(json.dumps(dict(t, test=test, pid=os.getpid(), root=True)) + "\n")
