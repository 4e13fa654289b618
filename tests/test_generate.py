"""configs/cvae.py and configs/cgan.py end to end on real KMNIST and on official-format K49,
then generation from the trained workdir without retraining."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import cgan as cgan_config
from configs import cvae as cvae_config
from kjax import errors, experiment, generate
from tests.conftest import REPO, quick_eval


def _run(*args):
  return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                        timeout=600)


@pytest.mark.parametrize("config", ["cvae", "cgan"])
def test_config_trains_on_real_kmnist_then_generates(config, kmnist_dir, tmp_path):
  workdir = tmp_path / config
  result = _run("launch.py", f"--config=configs/{config}.py", f"--workdir={workdir}",
                "--config.data.name=kmnist", f"--config.data.data_dir={kmnist_dir}",
                "--config.data.train_split=test[:512]", "--config.data.eval_split=test[9500:]",
                "--config.train.num_epochs=2", f"--config.data.cache_dir={tmp_path / 'cache'}",
                "--config.figures.progress_every_epochs=1", "--config.eval.iwae_samples=16")
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((workdir / "summary.json").read_text())
  batch = 100 if config == "cvae" else 128
  assert summary["epoch"] == 2 and summary["step"] == 2 * (512 // batch)
  assert all(np.isfinite(v) for v in summary.values())
  assert (workdir / "figures" / "class_style_samples.png").stat().st_size > 10_000
  assert (workdir / "figures" / "progress" / "epoch_0002.png").exists()

  # The CLI samples the trained run: by character, thick, 6 images.
  out = tmp_path / "grid.png"
  result = _run("-m", "kjax.generate", f"--workdir={workdir}", "--label=お", "--style=thick",
                "--num_samples=6", f"--out={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == str(out) and out.stat().st_size > 2_000
  result = _run("-m", "kjax.generate", f"--workdir={workdir}", "--label=12")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      "kjax: error: --label='12' is not a class of kmnist: expected 0..9")
  assert "Traceback" not in result.stderr

  # The API: the same key gives the same images; the label and the style matter.
  run = generate.load_run(str(workdir))
  assert run.step == summary["step"]
  a = generate.generate(run, 0, 1, 4, jax.random.key(7))
  assert a.shape == (4, 28, 28, 1) and a.min() >= 0 and a.max() <= 1
  np.testing.assert_array_equal(a, generate.generate(run, 0, 1, 4, jax.random.key(7)))
  assert not np.allclose(a, generate.generate(run, 3, 1, 4, jax.random.key(7)))
  assert not np.allclose(a, generate.generate(run, 0, 0, 4, jax.random.key(7)))


def test_generate_refuses_a_workdir_without_a_run(tmp_path):
  with pytest.raises(errors.ConfigError, match="is not a kjax run"):
    generate.load_run(str(tmp_path))


@pytest.mark.parametrize("module", [cvae_config, cgan_config])
def test_config_trains_on_official_format_k49(module, synthetic_k49_dir, tmp_path):
  config = quick_eval(module.get_config())
  config.data.data_dir = synthetic_k49_dir  # data.name stays "k49", the default
  config.data.verify_checksums = False
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.eval_split = "test[:100]"
  config.train.num_epochs = 1
  config.figures.samples_per_style = 1
  summary = experiment.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["step"] == 300 // config.train.batch_size
  assert all(np.isfinite(v) for v in summary.values())
  assert (tmp_path / "run" / "figures" / "class_style_samples.png").exists()
