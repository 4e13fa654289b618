"""No code from data: every ``np.load`` in kjax refuses pickled objects, and no module
unpickles anything (checkpoints go through orbax's array formats only)."""

import ast
import os

import numpy as np
import pytest

from kjax import frames
from tests.conftest import REPO


def _calls(tree):
  for node in ast.walk(tree):
    if isinstance(node, ast.Call):
      yield node


def test_every_np_load_in_kjax_refuses_pickles():
  loads, offenders = 0, []
  for root, _, files in os.walk(os.path.join(REPO, "kjax")):
    for name in files:
      if not name.endswith(".py"):
        continue
      path = os.path.join(root, name)
      with open(path) as f:
        tree = ast.parse(f.read())
      for call in _calls(tree):
        func = ast.unparse(call.func)
        if func in ("pickle.load", "pickle.loads", "cloudpickle.load", "dill.load"):
          offenders.append(f"{path}:{call.lineno}: {func}")
        if func in ("np.load", "numpy.load"):
          loads += 1
          pickles = [k for k in call.keywords if k.arg == "allow_pickle"]
          if not pickles or ast.unparse(pickles[0].value) != "False":
            offenders.append(f"{path}:{call.lineno}: np.load without allow_pickle=False")
  assert loads >= 4 and not offenders, offenders


def test_a_pickled_frames_file_is_refused(tmp_path):
  directory = tmp_path / "frames"
  directory.mkdir()
  np.savez(directory / "epoch_0001.npz", samples=np.array([{"code": 1}], dtype=object))
  with pytest.raises(ValueError, match="allow_pickle"):
    frames.load_frames(str(directory))
