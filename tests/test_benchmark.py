"""Issue 11: the benchmark as one command (configs/benchmark.py, kjax.benchmark)."""

import os

import pytest

from configs import benchmark as benchmark_config
from kjax import benchmark, errors, launcher
from kjax.evaluation import domain


def _tiny(kmnist_dir, tmp_path):
  """configs/benchmark.py with two of its studies at test size, 2 seeds, 1 epoch."""
  config = benchmark_config.get_config()
  config.data.data_dir = kmnist_dir
  config.data.train_split, config.data.eval_split = "test[:256]", "test[9800:]"
  config.data.cache_dir = str(tmp_path / "cache")
  config.seeds = (0, 1)
  config.max_epochs = 1
  del config.studies["beta_vae"]
  del config.studies["cgan"]
  for study in config.studies.values():
    study.train.batch_size = 64
    study.train.steps_per_call = "1"
    study.eval.iwae_samples, study.eval.iwae_chunk_size = 8, 8
    study.eval.kid_subsets, study.eval.cas_epochs = 2, 0
  config.studies.cvae.sweep.architecture = ("mlp",)
  config.studies.cvae.sweep.latent_dim = (2,)
  config.studies.cgan_seed.model.hidden = 32
  return config


def test_benchmark_runs_every_study_and_tabulates_mean_and_std(kmnist_dir, tmp_path):
  config = _tiny(kmnist_dir, tmp_path)
  workdir = str(tmp_path / "bench")
  assert launcher.run(config, workdir) == 0
  for study in ("cvae", "cgan_seed"):
    assert os.path.isfile(os.path.join(workdir, study, "results.csv"))
    for seed in (0, 1):
      assert any(f"seed={seed}" in name for name in os.listdir(os.path.join(workdir, study, "runs")))
  with open(os.path.join(workdir, "results.md"), encoding="utf-8") as f:
    text = f.read()
  assert "## cvae" in text and "## cgan_seed" in text
  assert domain.reference_entries()["kmnist"]["params_sha256"] in text
  assert "jax 0.10" in text and "seeds (0, 1)" in text and "1 epochs" in text
  assert text.count("| 2 |") >= 4  # n = 2 seeds in each study's two tables
  assert " ± " in text and "eval/precision" in text and "eval/coverage" in text
  before = os.path.getmtime(os.path.join(workdir, "results.md"))
  assert launcher.run(config, workdir, mode="results") == 0  # rebuilt, nothing trained
  assert os.path.getmtime(os.path.join(workdir, "results.md")) >= before


def test_bad_benchmark_input_is_refused_before_anything_is_written(kmnist_dir, tmp_path):
  config = _tiny(kmnist_dir, tmp_path)
  workdir = tmp_path / "never"
  config.seeds = ()
  with pytest.raises(errors.ConfigError, match=r"config.seeds=\(\) is not allowed"):
    benchmark.run_benchmark(config, str(workdir))
  config.seeds = (0,)
  config.studies.cvae.sweep.latent_dim = (0,)
  with pytest.raises(errors.ConfigError, match="config.studies.cvae: sweep run .*latent_dim"):
    benchmark.run_benchmark(config, str(workdir))
  assert not workdir.exists()
