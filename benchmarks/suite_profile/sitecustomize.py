"""Loaded by every Python process the profiled suite starts (via PYTHONPATH): records the
process's command and, once jax is imported, its compile events, into $KJAX_SUITE_PROFILE."""

import atexit
import importlib.abc
import importlib.machinery
import json
import os
import sys
import time

_PATH = os.environ.get("KJAX_SUITE_PROFILE")
_TEST = os.environ.get("KJAX_SUITE_PROFILE_TEST", "")
_TOTALS = {"compile_s": 0.0, "trace_s": 0.0, "lower_s": 0.0, "compiles": 0}
_START = time.perf_counter()


def add_event(totals, event, duration):
  """Adds one ``jax.monitoring`` duration event to ``totals`` (compile, trace, lowering)."""
  if event.endswith("backend_compile_duration"):
    totals["compile_s"] += duration
    totals["compiles"] += 1
  elif event.endswith("jaxpr_trace_duration"):
    totals["trace_s"] += duration
  elif event.endswith("jaxpr_to_mlir_module_duration"):
    totals["lower_s"] += duration


def _listener(event, duration, **_):
  add_event(_TOTALS, event, duration)


class _Hook(importlib.abc.MetaPathFinder):
  """Registers the listener right after jax.monitoring is imported."""

  def find_spec(self, name, path, target=None):
    if name != "jax.monitoring":
      return None
    sys.meta_path.remove(self)
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None:
      return None
    loader = spec.loader
    exec_module = loader.exec_module

    def exec_and_register(module):
      exec_module(module)
      module.register_event_duration_secs_listener(_listener)

    loader.exec_module = exec_and_register
    return spec


def _dump():
  record = dict(_TOTALS, pid=os.getpid(), test=_TEST, argv=sys.argv[:3],
                wall_s=time.perf_counter() - _START)
  with open(_PATH, "a") as f:
    f.write(json.dumps(record) + "\n")


if _PATH and os.environ.get("KJAX_SUITE_PROFILE_ROOT") != str(os.getpid()):
  sys.meta_path.insert(0, _Hook())
  atexit.register(_dump)
