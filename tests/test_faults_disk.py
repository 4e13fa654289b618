"""Disk faults: every file kjax writes outside orbax is written atomically (kjax.files), so a
full disk, an unwritable folder or a kill mid-write leaves the previous version intact, no
temporary file behind, and a one-line ``WriteError`` naming the path and the OS error; a
damaged ``frames/*.npz`` is skipped with a warning."""

import errno
import logging
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from kjax import errors
from kjax import files
from kjax import frames as kframes
from kjax import metric_writers

ENOSPC_TEXT = os.strerror(errno.ENOSPC)  # 'No space left on device'
OLD = b"previous version\n"


def _fig():
  from kjax import figures  # noqa: PLC0415

  fig, ax = figures.plt.subplots(figsize=(1, 1))
  ax.plot([0, 1], [0, 1])
  return fig


def _image(n=1):
  from PIL import Image  # noqa: PLC0415

  return Image.fromarray(np.full((8, 8), 100 + n, np.uint8))


# name → (file name, write(path)): one per helper of kjax.files, plus the metric_writers alias.
WRITERS = {
    "write_text": ("a.txt", lambda p: files.write_text(p, "new text\n")),
    "write_bytes": ("a.bin", lambda p: files.write_bytes(p, b"new bytes")),
    "write_json": ("a.json", lambda p: files.write_json(p, {"b": 1, "a": [1, 2]})),
    "metric_writers.write_json": ("s.json", lambda p: metric_writers.write_json(p, {"x": 1.5})),
    "save_figure": ("f.png", lambda p: files.save_figure(_fig(), p, dpi=20)),
    "save_image_png": ("i.png", lambda p: files.save_image(_image(), p)),
    "save_image_gif": ("i.gif", lambda p: files.save_image(
        _image(), p, save_all=True, append_images=[_image(2)], duration=50, loop=0)),
    "save_npz": ("a.npz", lambda p: files.save_npz(p, x=np.arange(3), y=np.eye(2))),
    "save_npy": ("a.npy", lambda p: files.save_npy(p, np.arange(4.0))),
}


class _FailingFile:
  """A real file whose ``write`` fails with ENOSPC after ``ok_bytes`` bytes were written."""

  def __init__(self, f, ok_bytes=0):
    self._f, self._left = f, ok_bytes

  def write(self, data):
    if len(data) > self._left:
      self._f.write(data[:self._left])
      raise OSError(errno.ENOSPC, ENOSPC_TEXT)
    self._left -= len(data)
    return self._f.write(data)

  def __getattr__(self, name):
    return getattr(self._f, name)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self._f.close()


def _enospc(*_, **__):
  raise OSError(errno.ENOSPC, ENOSPC_TEXT)


def inject_enospc(monkeypatch, where):
  """Makes the next atomic writes fail with ENOSPC at ``where``: the file's write (after a
  few bytes went through), its fsync (delayed allocation) or the rename."""
  if where == "write":
    monkeypatch.setattr(files, "open",
                        lambda *a, **k: _FailingFile(open(*a, **k), ok_bytes=3), raising=False)
  elif where == "fsync":
    monkeypatch.setattr(files.os, "fsync", _enospc)
  else:
    monkeypatch.setattr(files.os, "replace", _enospc)


def assert_one_line_error(excinfo, path, reason):
  message = str(excinfo.value)
  assert "\n" not in message, message
  assert path in message and reason in message, message
  assert isinstance(excinfo.value, errors.KjaxError) and isinstance(excinfo.value, OSError)


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
@pytest.mark.parametrize("name", list(WRITERS))
def test_enospc_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch, name,
                                                                where):
  filename, write = WRITERS[name]
  path = str(tmp_path / filename)
  (tmp_path / "other").write_bytes(b"x")
  with open(path, "wb") as f:
    f.write(OLD)
  inject_enospc(monkeypatch, where)
  with pytest.raises(errors.WriteError) as excinfo:
    write(path)
  assert_one_line_error(excinfo, path, "No space left on device")
  assert excinfo.value.errno == errno.ENOSPC
  assert str(excinfo.value) == f"cannot write {path}: No space left on device"
  assert (tmp_path / filename).read_bytes() == OLD
  assert sorted(os.listdir(tmp_path)) == sorted([filename, "other"])  # no *.tmp left
  monkeypatch.undo()
  assert write(path) == path or name == "metric_writers.write_json"  # then it works
  assert (tmp_path / filename).read_bytes() != OLD
  assert sorted(os.listdir(tmp_path)) == sorted([filename, "other"])


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_missing_or_unwritable_folder_is_one_line_naming_the_path(tmp_path, monkeypatch, name):
  filename, write = WRITERS[name]
  missing = str(tmp_path / "gone" / filename)
  with pytest.raises(errors.WriteError) as excinfo:
    write(missing)
  assert_one_line_error(excinfo, missing, os.strerror(errno.ENOENT))
  assert not (tmp_path / "gone").exists()

  folder = tmp_path / "ro"
  folder.mkdir()
  path = str(folder / filename)
  if os.geteuid() == 0:  # root writes through chmod: simulate the OS's refusal
    monkeypatch.setattr(files, "open", lambda *a, **k: (_ for _ in ()).throw(
        PermissionError(errno.EACCES, os.strerror(errno.EACCES), a[0])), raising=False)
  else:
    folder.chmod(0o500)
  try:
    with pytest.raises(errors.WriteError) as excinfo:
      write(path)
  finally:
    folder.chmod(0o700)
  assert_one_line_error(excinfo, path, os.strerror(errno.EACCES))
  assert os.listdir(folder) == []


def test_makedirs_refused_is_a_write_error(tmp_path):
  (tmp_path / "file").write_text("in the way")
  target = str(tmp_path / "file" / "figures")
  with pytest.raises(errors.WriteError) as excinfo:
    files.makedirs(target)
  assert str(excinfo.value).startswith(f"cannot write {target}: ")
  assert "\n" not in str(excinfo.value)
  assert files.makedirs(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_an_exception_inside_the_block_keeps_the_old_file(tmp_path, exc):
  path = tmp_path / "config.json"
  path.write_bytes(OLD)
  with pytest.raises(exc):
    with files.atomic_write(str(path)) as f:
      f.write("half of the new ")
      raise exc("killed")
  assert path.read_bytes() == OLD
  assert os.listdir(tmp_path) == ["config.json"]


def test_a_process_killed_mid_write_leaves_the_old_file(tmp_path):
  path = tmp_path / "summary.json"
  path.write_bytes(OLD)
  code = ("import os, signal, sys; from kjax import files\n"
          "with files.atomic_write(sys.argv[1], 'wb') as f:\n"
          "  f.write(b'half'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n")
  proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert proc.returncode == -9, proc.stderr
  assert path.read_bytes() == OLD
  leftovers = [f for f in os.listdir(tmp_path) if f != "summary.json"]
  assert all(f.startswith("summary.json.") and f.endswith(".tmp") for f in leftovers)


def test_write_json_bytes_are_unchanged(tmp_path):
  obj = {"b": [1, 2.5], "a": {"z": None, "y": "é"}}
  import json  # noqa: PLC0415

  files.write_json(str(tmp_path / "a.json"), obj)
  expected = json.dumps(obj, indent=2, sort_keys=True) + "\n"
  assert (tmp_path / "a.json").read_bytes() == expected.encode()
  with pytest.raises(TypeError):  # not serialisable: the old file is untouched
    files.write_json(str(tmp_path / "a.json"), {"x": object()})
  assert (tmp_path / "a.json").read_bytes() == expected.encode()
  assert os.listdir(tmp_path) == ["a.json"]


@pytest.mark.parametrize("where", ["write", "replace"])
def test_metrics_jsonl_keeps_its_lines_when_a_write_fails(tmp_path, monkeypatch, where):
  writer = metric_writers.MetricWriter(str(tmp_path))
  try:
    writer.write(10, 1, {"train/loss": 3.0})
    writer.write(20, 2, {"train/loss": 2.0})
    before = (tmp_path / "metrics.jsonl").read_bytes()
    assert before.count(b"\n") == 2
    with monkeypatch.context() as m:
      inject_enospc(m, where)
      with pytest.raises(errors.WriteError, match="metrics.jsonl: No space left on device"):
        writer.write(30, 3, {"train/loss": 1.0})
    assert (tmp_path / "metrics.jsonl").read_bytes() == before
    assert [r["step"] for r in writer.history] == [10, 20]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    writer.write(30, 3, {"train/loss": 1.0})  # the disk has room again
    assert [r["step"] for r in metric_writers.read_jsonl(str(tmp_path / "metrics.jsonl"))] == [
        10, 20, 30]
  finally:
    writer.close()
  resumed = metric_writers.MetricWriter(str(tmp_path), resume_step=20)
  resumed.close()
  assert [r["step"] for r in metric_writers.read_jsonl(str(tmp_path / "metrics.jsonl"))] == [
      10, 20]


def _frames_dir(tmp_path, epochs=(1, 2, 3)):
  directory = str(tmp_path / "w" / kframes.FRAMES_DIR)
  for e in epochs:
    kframes.save_frames(directory, e, {"samples": np.full((20, 40), 60 * e, np.uint8)})
  return directory


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "empty", "garbage", "npy",
                                    "not_a_tile"])
def test_a_damaged_frames_file_is_skipped_with_a_warning(tmp_path, caplog, damage):
  directory = _frames_dir(tmp_path)
  bad = os.path.join(directory, "epoch_0002.npz")
  data = open(bad, "rb").read()
  if damage == "truncated":
    data = data[:len(data) // 2]
  elif damage == "corrupted":  # the zip's directory intact, the deflated data not
    data = data[:40] + bytes(b ^ 0x5A for b in data[40:-200]) + data[-200:]
  elif damage == "empty":
    data = b""
  elif damage == "garbage":
    data = b"not a zip file at all" * 10
  if damage == "not_a_tile":
    files.save_npz(bad, samples=np.zeros(3, np.uint8))
  elif damage == "npy":
    files.save_npy(bad, np.zeros((20, 40), np.uint8))
  else:
    with open(bad, "wb") as f:
      f.write(data)
  with caplog.at_level(logging.WARNING):
    epochs, frames = kframes.load_frames(directory)
  assert epochs == [1, 3]
  assert [int(t[0, 0]) for t in frames["samples"]] == [60, 180]
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and bad in warnings[0] and "\n" not in warnings[0], warnings


def test_a_pickled_frames_file_is_refused_in_one_line(tmp_path):
  directory = _frames_dir(tmp_path, epochs=(1,))
  path = os.path.join(directory, "epoch_0002.npz")
  np.savez(path, samples=np.array([{"code": 1}], dtype=object))
  with pytest.raises(errors.DataError, match="allow_pickle") as excinfo:
    kframes.load_frames(directory)
  assert path in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_training_gifs_skip_a_damaged_frame(tmp_path, caplog):
  from PIL import Image  # noqa: PLC0415

  from kjax.evaluation import interpolation  # noqa: PLC0415

  directory = _frames_dir(tmp_path)
  with open(os.path.join(directory, "epoch_0003.npz"), "r+b") as f:
    f.truncate(40)
  workdir = str(tmp_path / "w")
  out_dir = os.path.join(workdir, "eval")
  run = types.SimpleNamespace(
      workdir=workdir,
      figure_path=lambda name: os.path.join(files.makedirs(out_dir), name),
      relative=lambda p: [os.path.relpath(p, workdir)] if p else [])
  with caplog.at_level(logging.WARNING):
    out = interpolation.training_gifs(run)
  assert out.figures == [os.path.join("eval", "training_samples.gif")]
  with Image.open(os.path.join(workdir, out.figures[0])) as gif:
    assert gif.n_frames == 2
  assert any("epoch_0003.npz" in r.getMessage() for r in caplog.records)


def test_every_frames_file_damaged_draws_no_gif(tmp_path):
  from kjax.evaluation import interpolation  # noqa: PLC0415

  directory = _frames_dir(tmp_path, epochs=(1,))
  with open(os.path.join(directory, "epoch_0001.npz"), "wb") as f:
    f.write(b"PK\x03\x04")
  run = types.SimpleNamespace(workdir=str(tmp_path / "w"), figure_path=None, relative=None)
  out = interpolation.training_gifs(run)
  assert out.figures == [] and "damaged" in out.protocol["training_gifs"]


def test_save_frames_enospc_keeps_the_previous_epoch_file(tmp_path, monkeypatch):
  directory = _frames_dir(tmp_path, epochs=(1,))
  path = os.path.join(directory, "epoch_0001.npz")
  before = open(path, "rb").read()
  inject_enospc(monkeypatch, "write")
  with pytest.raises(errors.WriteError, match="epoch_0001.npz: No space left on device"):
    kframes.save_frames(directory, 1, {"samples": np.zeros((5, 6), np.uint8)})
  assert open(path, "rb").read() == before and os.listdir(directory) == ["epoch_0001.npz"]


# --- end to end: a study's results with ENOSPC at the N-th write, for every N ---------------


def _fake_sweep(root):
  runs = []
  for beta in (1.0, 4.0):
    for seed in (0, 1):
      w = os.path.join(root, f"b{beta}_s{seed}")
      files.makedirs(w)
      files.write_json(os.path.join(w, "summary.json"),
                       {"step": 100, "eval/nelbo": 100.0 * beta + seed, "eval/rec": 90.0 + seed,
                        "eval/kl": 10.0 / beta})
      kframes.save_frames(os.path.join(w, kframes.FRAMES_DIR), 1,
                          {"samples": np.full((8, 8), 40 * seed, np.uint8)})
      runs.append({"name": f"b{beta}_s{seed}", "workdir": w,
                   "settings": {"objective.beta": beta, "seed": seed}})
  return runs


def _snapshot(root):
  out = {}
  for d, _, names in os.walk(root):
    for n in names:
      with open(os.path.join(d, n), "rb") as f:
        out[os.path.relpath(os.path.join(d, n), root)] = f.read()
  return out


def test_results_with_enospc_at_every_write_keep_each_file_whole(tmp_path, monkeypatch):
  from kjax import results  # noqa: PLC0415

  study = str(tmp_path / "study")
  files.makedirs(study)
  runs = _fake_sweep(study)
  replaced = []
  real_replace = os.replace

  def counting_replace(src, dst):
    replaced.append(dst)
    real_replace(src, dst)

  with monkeypatch.context() as m:
    m.setattr(files.os, "replace", counting_replace)
    results.write_results(study, runs)
  written = [os.path.relpath(p, study) for p in replaced]
  assert written[0] == "results.csv" and written[-1] == "report.html"
  assert len(written) >= 5, written
  first = _snapshot(study)

  for n in range(len(written)):
    calls = []

    def failing_replace(src, dst, n=n, calls=calls):
      calls.append(dst)
      if len(calls) == n + 1:
        raise OSError(errno.ENOSPC, ENOSPC_TEXT)
      real_replace(src, dst)

    # The study's files from a first, complete pass: each is either rewritten whole or kept.
    with monkeypatch.context() as m:
      m.setattr(files.os, "replace", failing_replace)
      with pytest.raises(errors.WriteError) as excinfo:
        results.write_results(study, runs)
    assert_one_line_error(excinfo, os.path.join(study, written[n]), "No space left on device")
    now = _snapshot(study)
    assert set(now) == set(first), set(now) ^ set(first)  # no temporary left, none missing
    for rel in written:  # rewritten with the same content, or the previous version kept
      assert now[rel] == first[rel], rel

  # From an empty study folder: the files before the failure exist, the failed one does not.
  fresh = str(tmp_path / "fresh")
  files.makedirs(fresh)
  fresh_runs = _fake_sweep(fresh)
  before = set(_snapshot(fresh))
  with monkeypatch.context() as m:
    calls = []

    def fail_third(src, dst):
      calls.append(dst)
      if len(calls) == 3:
        raise OSError(errno.ENOSPC, ENOSPC_TEXT)
      real_replace(src, dst)

    m.setattr(files.os, "replace", fail_third)
    with pytest.raises(errors.WriteError):
      results.write_results(fresh, fresh_runs)
  new = set(_snapshot(fresh)) - before
  assert new == {os.path.relpath(p, fresh) for p in calls[:2]}, new


def test_run_report_enospc_keeps_the_previous_report(tmp_path, monkeypatch):
  from kjax import report  # noqa: PLC0415

  result = {"run": {"model": "beta_vae", "description": "test"}, "protocol": {"k": 1},
            "metrics": {"nelbo": 1.0}, "figures": [], "classifier": None}
  path = report.write_report(str(tmp_path), {"seed": 0}, result)
  before = open(path, "rb").read()
  inject_enospc(monkeypatch, "fsync")
  result["metrics"]["nelbo"] = 2.0
  with pytest.raises(errors.WriteError) as excinfo:
    report.write_report(str(tmp_path), {"seed": 0}, result)
  assert_one_line_error(excinfo, path, "No space left on device")
  assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["report.html"]


def test_caches_that_cannot_be_written_are_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
  from kjax.data import style  # noqa: PLC0415

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
  labels = np.arange(40) % 2

  def thresholds(cache_dir):
    return style.cached_class_thresholds(images, labels, 2, 128, "median", cache_dir=cache_dir)

  expected = thresholds(None)
  with monkeypatch.context() as m:
    inject_enospc(m, "replace")
    with caplog.at_level(logging.WARNING):
      np.testing.assert_array_equal(thresholds(str(tmp_path)), expected)
  assert any("No space left on device" in r.getMessage() for r in caplog.records)
  cache = tmp_path / "style"
  assert os.listdir(cache) == []
  thresholds(str(tmp_path))
  (entry,) = os.listdir(cache)
  (cache / entry).write_bytes(b"\x93NUMPY damaged")  # a damaged entry is recomputed
  with caplog.at_level(logging.WARNING):
    np.testing.assert_array_equal(thresholds(str(tmp_path)), expected)
  np.testing.assert_array_equal(np.load(cache / entry, allow_pickle=False), expected)

  import ml_collections  # noqa: PLC0415

  from kjax.evaluation import cas  # noqa: PLC0415

  monkeypatch.setattr(cas, "train_and_test", lambda *a: 0.75)
  split = types.SimpleNamespace(images=images, labels=labels)
  run = types.SimpleNamespace(train_ds=split, eval_ds=split,
                              config=types.SimpleNamespace(data={"cache_dir": str(tmp_path)}))
  clf = ml_collections.ConfigDict({"epochs": 1})
  caplog.clear()
  with monkeypatch.context() as m:
    inject_enospc(m, "write")
    with caplog.at_level(logging.WARNING):
      assert cas._cached_reference(clf, run) == 0.75
  assert any("No space left on device" in r.getMessage() for r in caplog.records)
  assert os.listdir(tmp_path / "cas") == []
  assert cas._cached_reference(clf, run) == 0.75 and len(os.listdir(tmp_path / "cas")) == 1
