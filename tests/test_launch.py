"""End to end through ``launch.py`` on the real KMNIST test split, and its one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from configs import beta_vae
from kjax import launcher
from tests.conftest import REPO


def _launch(workdir, *overrides):
  return subprocess.run(
      [sys.executable, os.path.join(REPO, "launch.py"), "--config=configs/beta_vae.py",
       f"--workdir={workdir}", "--config.eval.iwae_samples=16", *overrides],
      cwd=REPO, capture_output=True, text=True, timeout=600)


def test_launch_trains_on_real_kmnist_then_evaluates(kmnist_dir, tmp_path):
  workdir = tmp_path / "run"
  flags = (f"--config.data.data_dir={kmnist_dir}", "--config.data.train_split=test[:512]",
           "--config.data.eval_split=test[9500:]", "--config.train.num_epochs=1",
           "--config.train.batch_size=64", f"--config.data.cache_dir={tmp_path / 'cache'}")
  result = _launch(workdir, *flags)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["step"] == 8 and summary["epoch"] == 1
  assert 0 < summary["eval/nelbo"] < 800
  assert (workdir / "figures" / "latent_manifold.png").stat().st_size > 10_000
  assert os.listdir(workdir / "checkpoints") == ["8"]
  assert "images/s" in result.stderr and "ETA" in result.stderr
  assert ", then evaluation ≈ " in result.stderr  # the ETA includes the evaluation to come
  assert "orbax" not in result.stderr  # library chatter is filtered
  first = json.loads((workdir / "eval" / "metrics.json").read_text())
  assert (workdir / "report.html").stat().st_size > 50_000

  assert first["inputs"]["step"] == 8 and first["inputs"]["config"]["eval.iwae_samples"] == 16
  assert "kjax: evaluation [1/" in result.stderr and "IWAE" not in result.stderr.split(
      "evaluation [1/")[0]

  # The same command again: nothing to train, the evaluation's inputs are unchanged.
  mtime = (workdir / "eval" / "metrics.json").stat().st_mtime_ns
  result = _launch(workdir, *flags)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "is already evaluated at step 8 with these eval settings" in result.stderr
  assert (workdir / "eval" / "metrics.json").stat().st_mtime_ns == mtime

  # --mode=evaluate restores the run and rewrites the same metrics; it trains nothing. With
  # only --workdir, the run's own config.json is used (plus the eval overrides given).
  (workdir / "eval" / "metrics.json").unlink()
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "launch.py"), "--mode=evaluate",
       f"--workdir={workdir}", "--config.eval.iwae_samples=16"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((workdir / "eval" / "metrics.json").read_text())["metrics"] == first["metrics"]
  assert os.listdir(workdir / "checkpoints") == ["8"]
  # With --config, every setting that differs from the run is named in one line.
  result = _launch(workdir, *flags, "--mode=evaluate", "--config.objective.beta=1.0",
                   "--config.model.latent_dim=3")
  assert result.returncode == 1
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith("kjax: error: 2 setting(s) differ from "), result.stderr[-2000:]
  assert "config.model.latent_dim=3 (the run has 2)" in line
  assert "config.objective.beta=1.0 (the run has 4.0)" in line
  assert "leave out --config to evaluate with the run's own config" in line
  result = _launch(tmp_path / "none", *flags, "--mode=evaluate")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith("kjax: error: --workdir=")
  assert "is not a kjax run" in result.stderr and not (tmp_path / "none").exists()


def test_bad_input_stops_with_one_line_before_the_workdir(tmp_path):
  """Through launch.py: a data folder that does not exist."""
  workdir = tmp_path / "never"
  result = _launch(workdir, "--config.data.data_dir=/nonexistent/kmnist",
                   "--config.data.train_split=test[:100]", "--config.data.eval_split=test[100:200]")
  assert result.returncode == 1
  errors = [l for l in result.stderr.splitlines() if "kjax: error:" in l]
  assert len(errors) == 1, result.stderr[-2000:]
  assert ("t10k-images-idx3-ubyte.gz not found in /nonexistent/kmnist; download it from http"
          in errors[0])
  assert "Traceback" not in result.stderr
  assert not workdir.exists()


@pytest.mark.parametrize("field, value, message", [
    ("objective.beta", -1.0, "config.objective.beta=-1.0 is not allowed"),
    ("model.latent_dim", 0, "config.model.latent_dim=0 is not allowed"),
    ("data.name", "nope", "config.data.name='nope' is not a known data set"),
    # Keys hold 32 bits: 2**32 would silently train the run of seed 0.
    ("seed", 2**32, "config.seed=4294967296 is not allowed: expected an integer "
     ">= 0 and <= 4294967295"),
])
def test_a_bad_config_value_is_one_line_before_the_workdir(field, value, message, tmp_path,
                                                           capsys):
  """The launcher's checks, in this process (the command's own path is the test above)."""
  config = beta_vae.get_config()
  config.data.data_dir = "/nonexistent/kmnist"  # never read: the value is refused first
  section, _, name = field.rpartition(".")
  setattr(config[section] if section else config, name, value)
  workdir = tmp_path / "never"
  assert launcher.run(config, str(workdir)) == 1
  err = capsys.readouterr().err
  errors = [line for line in err.splitlines() if line.startswith("kjax: error: ")]
  assert len(errors) == 1 and message in errors[0], err
  assert "Traceback" not in err
  assert not workdir.exists()


def test_the_launcher_imports_no_scikit_learn():
  """scikit-learn takes 0.7 s to import: only the metrics that use it load it (every
  launch and every config error start faster; docs/speed.md)."""
  done = subprocess.run([sys.executable, "-c", "import sys, kjax.launcher; "
                         "print(sorted(m for m in sys.modules if m.startswith('sklearn')))"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip() == "[]"
