"""configs/cvae.py and configs/cgan.py end to end on real KMNIST and on official-format K49,
then generation from the trained workdir without retraining."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import beta_vae as beta_vae_config
from configs import cgan as cgan_config
from configs import cvae as cvae_config
from kjax import configs, errors, experiment, generate, launcher
from tests.conftest import REPO, quick_eval


def _run(*args):
  return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                        timeout=600)


@pytest.mark.parametrize("config", ["cvae", "cgan"])
def test_config_trains_on_real_kmnist_then_generates(config, kmnist_dir, tmp_path):
  workdir = tmp_path / config
  # Trained in this process (launch.py's own path is tests/test_launch.py's); the generate
  # command line below is the process under test.
  run_config = configs.get_config(config)
  run_config.data.name = "kmnist"
  run_config.data.data_dir = kmnist_dir
  run_config.data.train_split = "test[:512]"
  run_config.data.eval_split = "test[9500:]"
  run_config.train.num_epochs = 2
  run_config.data.cache_dir = str(tmp_path / "cache")
  run_config.figures.progress_every_epochs = 1
  run_config.eval.iwae_samples = 16
  assert launcher.run(run_config, str(workdir)) == 0
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
  # Issue 13: the path and little else (no orbax/absl INFO lines).
  lines = (result.stdout + result.stderr).strip().splitlines()
  assert len(lines) <= 3 and str(out) in lines, lines
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


# --- Issue 13: the command line refuses bad requests before restoring anything ------------

def _untrained_run(workdir, module, checkpoint=False, nan=False, **model):
  """A workdir with ``module``'s config (KMNIST; ``model`` overrides) and, with
  ``checkpoint``, an initial state saved as step 0: enough for ``kjax.generate``. With
  ``nan``, every float array of that state is NaN (a corrupt checkpoint)."""
  from kjax import checkpointing, metric_writers, rng, tasks  # noqa: PLC0415
  config = module.get_config()
  config.data.name = "kmnist"
  config.model.update(model)
  workdir.mkdir()
  metric_writers.write_json(str(workdir / "config.json"), config.to_dict())
  if checkpoint:
    state = tasks.get_task(config, None).init_state(rng.stream_keys(config.seed)["init"])
    if nan:
      state = jax.tree.map(lambda x: np.full_like(x, np.nan) if np.issubdtype(
          np.asarray(x).dtype, np.floating) else x, state)
    ckpt = checkpointing.Checkpointer(str(workdir / "checkpoints"), keep=1)
    ckpt.save(0, {"state": state})
    ckpt.close()
  return str(workdir)


@pytest.fixture
def no_restore(monkeypatch):
  """Restoring a checkpoint fails the test: whatever is refused must be refused first."""
  def restore(*args, **kwargs):
    raise AssertionError("the checkpoint was restored before the request was checked")
  monkeypatch.setattr(generate.kworkdir, "restore_state", restore)


@pytest.mark.parametrize("flags, match", [
    (dict(num_samples=0), r"^--num_samples=0 is not allowed: expected 1\.\.1024"),
    (dict(num_samples=5000), r"^--num_samples=5000 is not allowed: expected 1\.\.1024"),
    (dict(num_samples=100000), r"^--num_samples=100000 is not allowed: expected 1\.\.1024"),
    (dict(seed=2**32), r"^--seed=4294967296 is not allowed: expected 0\.\.4294967295"),
    (dict(seed=-1), r"^--seed=-1 is not allowed: expected 0\.\.4294967295"),
    (dict(ncols=0), r"^--ncols=0 is not allowed: expected >= 1"),
    (dict(ncols=-1), r"^--ncols=-1 is not allowed: expected >= 1"),
    (dict(style="fat"), r"^--style='fat' is not allowed: expected thin, thick, 0 or 1"),
    (dict(label="12"), r"^--label='12' is not a class of kmnist: expected 0\.\.9 or one of お"),
    (dict(label="あ"), r"^--label='あ' is not a class of kmnist"),
    (dict(out="grid.gif"), r"^--out='grid.gif' is not allowed: expected a path ending in \.png"),
    (dict(out="figs/grid"), r"^--out='figs/grid' is not allowed: expected a path ending in "
     r"\.png"),
], ids=["num_samples=0", "num_samples=5000", "num_samples=100000", "seed=2**32", "seed=-1",
        "ncols=0", "ncols=-1", "style", "label_index", "label_character", "out",
        "out_without_extension"])
def test_generate_checks_every_flag_before_restoring(flags, match, tmp_path, no_restore):
  workdir = _untrained_run(tmp_path / "cvae", cvae_config)
  with pytest.raises(errors.ConfigError, match=match) as e:
    generate.generate_grid(workdir, **flags)
  assert "\n" not in str(e.value)
  assert os.listdir(workdir) == ["config.json"]  # nothing written


def test_generate_refuses_label_and_style_for_the_unconditional_beta_vae(tmp_path, no_restore):
  workdir = _untrained_run(tmp_path / "beta_vae", beta_vae_config)
  for flags, given in ((dict(label="3"), "--label=3"), (dict(style="thick"), "--style=thick"),
                       (dict(label="お", style=1), "--label=お --style=1")):
    with pytest.raises(errors.ConfigError) as e:
      generate.generate_grid(workdir, **flags)
    assert str(e.value) == (f"{given}: {workdir} is an unconditional beta_vae run; it takes "
                            "no --label or --style (drop them)")
  # The command line: that one line, exit status 1, no traceback, no INFO logs.
  result = _run("-m", "kjax.generate", f"--workdir={workdir}", "--label=3")
  assert result.returncode == 1 and result.stdout == ""
  assert result.stderr.strip().splitlines() == [
      f"kjax: error: --label=3: {workdir} is an unconditional beta_vae run; it takes no "
      "--label or --style (drop them)"]


def test_generate_samples_the_unconditional_beta_vae_without_label(tmp_path):
  workdir = _untrained_run(tmp_path / "beta_vae", beta_vae_config, checkpoint=True,
                           architecture="mlp", mlp_widths=(32,))
  out = generate.generate_grid(workdir, num_samples=3, seed=2**32 - 1)
  assert out == os.path.join(workdir, "generated", "unconditional_seed4294967295.png")
  assert os.path.getsize(out) > 1_000


# --- Issue 16: samples that are not finite are refused, in one line, writing nothing ------

def test_generate_refuses_samples_that_are_not_finite(tmp_path):
  workdir = _untrained_run(tmp_path / "beta_vae", beta_vae_config, checkpoint=True, nan=True,
                           architecture="mlp", mlp_widths=(32,))
  message = (f"the samples of the checkpoint at step 0 in {workdir} are not finite (3 of 3 "
             "images hold NaN); the checkpoint may be corrupt or the run diverged")
  with pytest.raises(errors.NonFiniteSamplesError) as e:
    generate.generate_grid(workdir, num_samples=3, out=str(tmp_path / "grid.png"))
  assert str(e.value) == message and e.value.step == 0
  assert not (tmp_path / "grid.png").exists()
  assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json"]  # nothing written

  # The command line: that one line and exit status 1, and no orbax INFO lines although the
  # checkpoint was restored (bad flags never reach the restore: see above).
  result = _run("-m", "kjax.generate", f"--workdir={workdir}", "--num_samples=3")
  assert result.returncode == 1 and result.stdout == ""
  assert result.stderr.strip().splitlines() == [f"kjax: error: {message}"]
  assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json"]
