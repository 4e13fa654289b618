"""A pytest plugin that attributes compile time to test files, in this process and in every
Python subprocess the tests start.

    PYTHONPATH=benchmarks/suite_profile KJAX_SUITE_PROFILE=/tmp/p.jsonl \
      pytest -q -p plugin --durations=25

then ``python benchmarks/suite_profile/report.py /tmp/p.jsonl``.
"""

import json
import os

import jax.monitoring
from sitecustomize import add_event

_PATH = os.environ["KJAX_SUITE_PROFILE"]
os.environ["KJAX_SUITE_PROFILE_ROOT"] = str(os.getpid())
_current = {"test": ""}
_totals = {}
_XDIST_CONTROLLER = False


def pytest_configure(config):
  global _XDIST_CONTROLLER
  _XDIST_CONTROLLER = (not hasattr(config, "workerinput")
                       and bool(getattr(config.option, "numprocesses", None)))


def _listener(event, duration, **_):
  add_event(_totals.setdefault(_current["test"], {"compile_s": 0.0, "trace_s": 0.0,
                                                  "lower_s": 0.0, "compiles": 0}),
            event, duration)


jax.monitoring.register_event_duration_secs_listener(_listener)


def pytest_runtest_logstart(nodeid, location):
  _current["test"] = nodeid
  os.environ["KJAX_SUITE_PROFILE_TEST"] = nodeid


def pytest_runtest_logreport(report):
  # Under xdist the controller receives every worker's reports again: the workers record.
  if _XDIST_CONTROLLER:
    return
  with open(_PATH, "a") as f:
    f.write(json.dumps({"phase": report.when, "test": report.nodeid,
                        "duration": report.duration, "stop": report.stop,
                        "worker": os.environ.get("PYTEST_XDIST_WORKER", "")}) + "\n")


def pytest_sessionfinish(session):
  with open(_PATH, "a") as f:
    for test, t in _totals.items():
      f.write(json.dumps(dict(t, test=test, pid=os.getpid(), root=True)) + "\n")
