"""Bad entries of kjax's on-disk caches (the style thresholds' ``style/*.npy``, CAS's
``cas/*.json``): each is validated when read; a bad one is recomputed and replaced, with
one warning line naming the file and what was wrong, never a traceback."""

import json
import logging
import os
import pickle
import types

import numpy as np
import pytest

from kjax.data import style
from kjax.evaluation import base, cas

_RNG = np.random.default_rng(0)
_IMAGES = _RNG.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
_LABELS = np.arange(40) % 2


def _thresholds(cache_dir):
  return style.cached_class_thresholds(_IMAGES, _LABELS, 2, 128, "median", cache_dir)


def _npy(array, allow_pickle=False):
  def write(path):
    with open(path, "wb") as f:
      np.save(f, array, allow_pickle=allow_pickle)
  return write


def _bytes(data):
  return lambda path: open(path, "wb").write(data)


def _truncated(path):
  size = os.path.getsize(path)
  os.truncate(path, size - 4)


def _one_warning(caplog, path, why):
  """The one warning line of the bad entry at ``path``; it names ``why``."""
  lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
  assert len(lines) == 1, [r.getMessage() for r in lines]
  message = lines[0].getMessage()
  assert "\n" not in message and lines[0].exc_info is None
  assert str(path) in message and why in message and "recomputing and replacing it" in message
  return message


@pytest.mark.parametrize("damage, why", [
    (_truncated, "not a readable .npy file"),
    (_npy(np.zeros(3)), "shape (3,), expected (2,)"),
    (_npy(np.zeros((2, 1))), "shape (2, 1), expected (2,)"),
    (_npy(np.zeros(2, np.float32)), "dtype float32, expected float64"),
    (_npy(np.array([1, 2])), "dtype int64, expected float64"),
    (_npy(np.array([np.nan, 1.0])), "NaN or infinite"),
    (_npy(np.array([np.inf, 1.0])), "NaN or infinite"),
    (_npy(np.array([-1.0, 1.0])), "negative values (min -1)"),
    (_npy(np.array([1.0, 785.0])), "values above 784"),
    (_npy(np.array([{}, {}], dtype=object), allow_pickle=True), "pickled objects"),
    (_bytes(pickle.dumps(np.zeros(2))), "not a .npy file: a pickle"),
    (_bytes(b"garbage"), "not a .npy file: it starts with b'garbag'"),
    (_bytes(b""), "not a .npy file: empty"),
], ids=["truncated", "shape", "ndim", "float32", "int64", "nan", "inf", "negative", "too_large",
        "object_array", "pickle", "garbage", "empty"])
def test_a_bad_style_cache_entry_is_recomputed_and_replaced(damage, why, tmp_path, caplog):
  expected = _thresholds(None)
  _thresholds(str(tmp_path))
  (path,) = (tmp_path / "style").iterdir()
  damage(str(path))
  with caplog.at_level(logging.WARNING):
    np.testing.assert_array_equal(_thresholds(str(tmp_path)), expected)
  _one_warning(caplog, path, why)
  stored = np.load(path, allow_pickle=False)  # replaced by the recomputed thresholds
  assert stored.dtype == np.float64
  np.testing.assert_array_equal(stored, expected)
  caplog.clear()
  with caplog.at_level(logging.WARNING):  # a good entry is served without a word
    np.testing.assert_array_equal(_thresholds(str(tmp_path)), expected)
  assert not caplog.records


def _cas_run(cache_dir):
  import ml_collections  # noqa: PLC0415
  split = types.SimpleNamespace(images=_IMAGES, labels=_LABELS)
  run = types.SimpleNamespace(train_ds=split, eval_ds=split,
                              config=types.SimpleNamespace(data={"cache_dir": cache_dir}))
  return ml_collections.ConfigDict({"epochs": 1}), run


@pytest.mark.parametrize("text, why", [
    ('{"cas_real_reference": 0.', "not readable JSON"),
    (b'\xff\xfe{"cas', "not readable JSON"),
    ("[0.5]", "a JSON list, expected an object"),
    ('{"cas": 0.5}', "keys ['cas'], expected ['cas_real_reference']"),
    ('{"cas_real_reference": 0.5, "x": 1}', "keys ['cas_real_reference', 'x']"),
    ('{"cas_real_reference": "0.5"}', "cas_real_reference is a str, expected a number"),
    ('{"cas_real_reference": true}', "cas_real_reference is a bool, expected a number"),
    ('{"cas_real_reference": null}', "cas_real_reference is a NoneType, expected a number"),
    ('{"cas_real_reference": NaN}', "cas_real_reference=nan, expected an accuracy in [0, 1]"),
    ('{"cas_real_reference": Infinity}', "cas_real_reference=inf"),
    ('{"cas_real_reference": -0.1}', "cas_real_reference=-0.1, expected an accuracy"),
    ('{"cas_real_reference": 1.5}', "cas_real_reference=1.5, expected an accuracy"),
], ids=["truncated", "not_utf8", "list", "key", "extra_key", "string", "bool", "null", "nan",
        "inf", "negative", "above_one"])
def test_a_bad_cas_cache_entry_is_recomputed_and_replaced(text, why, tmp_path, monkeypatch,
                                                          caplog):
  calls = []
  monkeypatch.setattr(cas, "train_and_test", lambda *a: calls.append(a) or 0.75)
  clf, run = _cas_run(str(tmp_path))
  assert cas._cached_reference(clf, run) == 0.75 and len(calls) == 1
  (path,) = (tmp_path / "cas").iterdir()
  if isinstance(text, str):
    path.write_text(text)
  else:
    path.write_bytes(text)
  with caplog.at_level(logging.WARNING):
    assert cas._cached_reference(clf, run) == 0.75
  assert len(calls) == 2  # recomputed
  _one_warning(caplog, path, why)
  assert json.loads(path.read_text()) == {"cas_real_reference": 0.75}  # and replaced
  caplog.clear()
  path.write_text('{"cas_real_reference": 0.5}')  # a good entry is used as it is, silently
  with caplog.at_level(logging.WARNING):
    assert cas._cached_reference(clf, run) == 0.5
  assert len(calls) == 2 and not caplog.records


def _feature_run(cache_dir, sha="a" * 64):
  split = types.SimpleNamespace(images=_IMAGES, labels=_LABELS)
  calls = []

  def features(x):
    calls.append(len(x))
    return np.abs(x.reshape(len(x), -1)[:, :8]).astype(np.float64) * (1 + (sha[0] == "b"))

  run = base.Run.__new__(base.Run)
  run.config = types.SimpleNamespace(data={"cache_dir": cache_dir})
  run.train_ds = run.eval_ds = split
  run.evaluator = types.SimpleNamespace(params_sha256=sha, features=features)
  run._cache = {}
  return run, calls


@pytest.mark.parametrize("damage, why", [
    (_truncated, "not a readable .npy file"),
    (_npy(np.zeros((40, 8), np.float32)), "dtype float32, expected float64"),
    (_npy(np.zeros((39, 8))), "shape (39, 8), expected (40, N)"),
    (_npy(np.full((40, 8), np.nan)), "NaN or infinite"),
    (_npy(np.full((40, 8), -1.0)), "negative values (min -1)"),
    (_bytes(pickle.dumps(np.zeros(2))), "not a .npy file: a pickle"),
], ids=["truncated", "float32", "rows", "nan", "negative", "pickle"])
def test_the_real_splits_features_are_cached_by_content(damage, why, tmp_path, caplog):
  """Issue 27: a real split's evaluator features are computed once per data, evaluator and
  JAX build (``base.Run.on_disk``); another evaluator computes its own; a bad entry is
  recomputed and replaced with one warning line."""
  run, calls = _feature_run(str(tmp_path))
  expected = run.features("train")
  assert calls == [40] and expected.shape == (40, 8)
  again, calls = _feature_run(str(tmp_path))
  np.testing.assert_array_equal(again.features("train"), expected)
  assert calls == []  # from the cache
  other, calls = _feature_run(str(tmp_path), sha="b" * 64)
  other.features("train")
  assert calls == [40]  # another evaluator: another entry
  paths = sorted((tmp_path / "features").iterdir())
  assert len(paths) == 2
  path = [p for p in paths if np.array_equal(np.load(p), expected)][0]
  damage(str(path))
  run, calls = _feature_run(str(tmp_path))
  with caplog.at_level(logging.WARNING):
    np.testing.assert_array_equal(run.features("train"), expected)
  assert calls == [40]
  _one_warning(caplog, path, why)
  np.testing.assert_array_equal(np.load(path, allow_pickle=False), expected)
