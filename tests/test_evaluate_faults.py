"""``launch.py --mode=evaluate`` on a workdir it cannot evaluate: no checkpoint, every
checkpoint damaged, or a checkpoint whose samples are not finite. Each is one
``kjax: error:`` line and exit status 1, and nothing in the workdir changes (the lock file
aside). The runs are untrained: an initial state saved as a checkpoint is enough."""

import os
import shutil

import jax
import numpy as np
import pytest

from configs import beta_vae
from kjax import checkpointing, launcher, metric_writers, rng, tasks
from kjax import workdir as kworkdir
from tests.conftest import on_real_kmnist


@pytest.fixture(scope="module")
def template(kmnist_dir, tmp_path_factory):
  """``(config, folder)``: a tiny MLP β-VAE on real KMNIST, in ``folder/empty`` with its
  ``config.json`` only, in ``folder/run`` with checkpoints at steps 0 and 1 (its initial
  state), and in ``folder/nan`` with one at step 0 whose float arrays are all NaN."""
  root = tmp_path_factory.mktemp("evaluate_faults")
  config = on_real_kmnist(beta_vae.get_config(), kmnist_dir, root)
  config.model.architecture = "mlp"
  config.model.mlp_widths = (32,)
  state = tasks.get_task(config, None).init_state(rng.stream_keys(config.seed)["init"])
  nan = jax.tree.map(lambda x: np.full_like(x, np.nan) if np.issubdtype(
      np.asarray(x).dtype, np.floating) else x, state)
  for name, states in (("empty", {}), ("run", {0: state, 1: state}), ("nan", {0: nan})):
    workdir = root / name
    workdir.mkdir()
    metric_writers.write_json(str(workdir / "config.json"), config.to_dict())
    if states:
      ckpt = checkpointing.Checkpointer(str(workdir / "checkpoints"), keep=2)
      for step, s in states.items():
        ckpt.save(step, {"state": s})
      ckpt.close()
  return config, root


def _copy(template, name, tmp_path):
  workdir = str(tmp_path / name)
  shutil.copytree(template[1] / name, workdir)
  return workdir


def _tree(folder):
  """relative path → (size, mtime) of every file but the lock file, and of every folder."""
  out = {}
  for root, dirs, names in os.walk(folder):
    for name in dirs + names:
      path = os.path.join(root, name)
      if name != kworkdir.LOCK_FILE:
        out[os.path.relpath(path, folder)] = (os.path.getsize(path), os.stat(path).st_mtime_ns)
  return out


def _evaluate(config, workdir, capsys):
  """``launcher.run(mode='evaluate')``: its exit status and stderr lines; asserts that the
  workdir's files are unchanged."""
  before = _tree(workdir)
  capsys.readouterr()
  status = launcher.run(config, workdir, mode="evaluate")
  err = capsys.readouterr().err.strip().splitlines()
  assert _tree(workdir) == before  # nothing written, moved or removed
  assert not kworkdir._held  # the lock is released
  return status, err


def test_evaluate_without_a_checkpoint_is_one_line(template, tmp_path, capsys):
  workdir = _copy(template, "empty", tmp_path)
  assert _evaluate(template[0], workdir, capsys) == (1, [
      f"kjax: error: --workdir={workdir!r} has no checkpoint yet; train it first"])
  os.mkdir(os.path.join(workdir, "checkpoints"))  # a folder without any step
  status, err = _evaluate(template[0], workdir, capsys)
  assert status == 1 and err == [
      f"kjax: error: --workdir={workdir!r} has no checkpoint yet; train it first"]


def test_evaluate_with_every_checkpoint_damaged_is_one_line(template, tmp_path, capsys):
  workdir = _copy(template, "run", tmp_path)
  for step in ("0", "1"):  # the largest file of each step, truncated
    paths = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(workdir, "checkpoints",
                                                                      step)) for f in fs]
    largest = max(paths, key=os.path.getsize)
    os.truncate(largest, os.path.getsize(largest) // 3)
  status, err = _evaluate(template[0], workdir, capsys)
  assert status == 1 and len(err) == 1, err
  assert err[0].startswith("kjax: error: no checkpoint restores: "), err
  assert "cannot be read" in err[0] and "Traceback" not in err[0]


def test_evaluate_refuses_samples_that_are_not_finite(template, tmp_path, capsys):
  workdir = _copy(template, "nan", tmp_path)
  n = 200  # config.eval.num_generated = 0: as many samples as the eval split has images
  assert _evaluate(template[0], workdir, capsys) == (1, [
      f"kjax: error: the samples of the checkpoint at step 0 in {workdir} are not finite "
      f"({n} of {n} images hold NaN); the checkpoint may be corrupt or the run diverged"])
  assert not os.path.exists(os.path.join(workdir, "eval"))
