"""Sweeps: grid and names, groups, stacked runs = solo runs, resume, extension, results, bad input."""

import json
import os

import jax
import numpy as np
import pytest

from configs import beta_vae_sweep, cgan, cgan_sweep, cvae_sweep
from kjax import errors, experiment, generate, launcher, results, sweep, train
from tests.conftest import Killed, die_after_save, latest_checkpoint_state, on_real_kmnist


def _tiny_sweep(kmnist_dir, tmp_path, **axes):
  """``configs/beta_vae_sweep.py`` shrunk to seconds: 128 real images, batch 32, 1 epoch,
  tiny networks, no figures or evaluation beyond the essentials."""
  config = on_real_kmnist(beta_vae_sweep.get_config(), kmnist_dir, tmp_path,
                          train_split="test[:128]", num_epochs=1)
  config.model.channels = (4, 8)
  config.model.hidden = 8
  config.train.eval_batch_size = 128
  config.figures.grid_size = 3
  config.eval.at_end_of_training = False
  for name in ("beta", "latent_dim", "seed"):
    config.sweep[name] = axes.get(name, config.sweep[name])
  return config


def _summary(workdir):
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)


def _solo(config_run, workdir):
  """The run alone, through the plain single-run path."""
  return experiment.train_and_evaluate(config_run, workdir)


def test_axes_names_resolve_and_refuse(kmnist_dir, tmp_path):
  config = _tiny_sweep(kmnist_dir, tmp_path)
  assert sweep.axes(config) == {"objective.beta": (0.5, 1.0, 2.0, 4.0, 8.0),
                                "model.latent_dim": (2, 10), "seed": (0, 1, 2)}
  keys = ["data.name", "model.name", "objective.beta", "optim.learning_rate"]
  assert sweep.resolve_axis("learning_rate", keys) == "optim.learning_rate"
  assert sweep.resolve_axis("model__name", keys) == "model.name"
  with pytest.raises(errors.ConfigError, match="ambiguous.*data__name, model__name"):
    sweep.resolve_axis("name", keys)
  with pytest.raises(errors.ConfigError, match="config.sweep.bta names no config key"):
    sweep.resolve_axis("bta", keys)
  runs = sweep.expand(config, str(tmp_path / "w"))
  assert len(runs) == 30 and runs[0].name == "beta=0.5,latent_dim=2,seed=0"
  assert runs[-1].config.objective.beta == 8.0 and runs[-1].config.model.latent_dim == 10
  assert "sweep" not in runs[0].config
  assert len({r.name for r in runs}) == 30
  config.sweep.beta = (1, 4.0)  # an int for a float key is the float: same run name
  assert sweep.expand(config, "w")[0].name == "beta=1.0,latent_dim=2,seed=0"
  config.sweep.beta = (1, 1.0)
  with pytest.raises(errors.ConfigError, match="values repeat"):
    sweep.expand(config, "w")


def test_groups_split_by_shape_and_stack_per_run_hyperparameters(kmnist_dir, tmp_path):
  config = _tiny_sweep(kmnist_dir, tmp_path)
  runs = sweep.expand(config, str(tmp_path / "w"))
  plan = sweep.groups(runs, "vmap", "cpu")
  assert [len(members) for _, members in plan] == [15, 15]
  assert {r.config.model.latent_dim for r in plan[0][1]} == {2}
  assert {r.config.model.latent_dim for r in plan[1][1]} == {10}
  # Measured defaults: conv models one after another on CPU, MLPs vmapped, all vmapped on GPU.
  assert sweep.groups(runs, "auto", "cpu")[0][0] == "sequential"
  assert sweep.groups(runs, "auto", "gpu")[0][0] == "vmap"
  assert sweep.default_sharing("cpu", cvae_sweep.get_config()) == "vmap"
  assert sweep.default_sharing("cpu", cgan_sweep.get_config()) == "sequential"
  cgan_runs = sweep.expand(cgan_sweep.get_config(), str(tmp_path / "g"))
  assert len(sweep.groups(cgan_runs, "auto", "cpu")) == 2  # by loss; lr and seed stacked


@pytest.mark.parametrize("bad, message", [
    ({"beta": ()}, r"config.sweep.beta=\(\) is not allowed: expected a non-empty tuple"),
    ({"beta": 4.0}, r"config.sweep.beta=4.0 is not allowed: expected a non-empty tuple"),
    ({"beta": (1.0, -2.0)}, r"sweep run beta=-2.0,latent_dim=2,seed=0: config.objective.beta=-2.0"),
    ({"max_runs": 2}, r"the sweep has 3 runs, more than config.sweep.max_runs=2"),
    ({"sharing": "pmap"}, r"config.sweep.sharing='pmap' is not allowed"),
])
def test_bad_sweeps_are_refused_before_anything_is_written(kmnist_dir, tmp_path, bad, message):
  config = _tiny_sweep(kmnist_dir, tmp_path, beta=(1.0, 4.0, 8.0), latent_dim=(2,), seed=(0,))
  with config.unlocked():
    for k, v in bad.items():
      with config.sweep.ignore_type():
        config.sweep[k] = v
  workdir = tmp_path / "w"
  with pytest.raises(errors.ConfigError, match=message):
    sweep.run_sweep(config, str(workdir))
  assert not workdir.exists()
  assert launcher.run(config, str(workdir)) == 1 and not workdir.exists()


def test_unknown_sweep_key_is_refused(kmnist_dir, tmp_path):
  config = _tiny_sweep(kmnist_dir, tmp_path, seed=(0,))
  with config.unlocked():
    config.sweep.bta = (1.0,)
  with pytest.raises(errors.ConfigError, match="config.sweep.bta names no config key"):
    sweep.run_sweep(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def solo_summaries(kmnist_dir, tmp_path_factory):
  """``{run name: summary}``: each run of the sweep of ``test_beta_vae_sweep_runs_equal_solo_runs``
  launched alone (``_solo``), once for all its sharing modes."""
  root = tmp_path_factory.mktemp("solo")
  config = _tiny_sweep(kmnist_dir, root, beta=(1.0, 4.0), latent_dim=(2,), seed=(1,))
  return {run.name: _solo(run.config, str(root / ("solo_" + run.name)))
          for run in sweep.expand(config, str(root / "sweep"))}


@pytest.mark.parametrize("sharing", ["sequential", "vmap",
                                     pytest.param("map", marks=pytest.mark.slow)])
def test_beta_vae_sweep_runs_equal_solo_runs(kmnist_dir, tmp_path, sharing, solo_summaries):
  """Each run of a sweep gives the summary of the same run launched alone: bit for bit when
  it runs alone in the sweep (sequential); within float noise when stacked (vmap, map)."""
  config = _tiny_sweep(kmnist_dir, tmp_path, beta=(1.0, 4.0), latent_dim=(2,), seed=(1,))
  config.sweep.sharing = sharing
  workdir = str(tmp_path / "sweep")
  out = sweep.run_sweep(config, workdir)
  assert out["runs"] == 2 and out["trained"] == 2
  assert sorted(solo_summaries) == sorted(r.name for r in sweep.expand(config, workdir))
  for run in sweep.expand(config, workdir):
    solo = solo_summaries[run.name]
    stacked = _summary(run.workdir)
    assert stacked.keys() == solo.keys()
    if sharing == "sequential":
      assert stacked == solo
    else:  # float noise only: Adam's steps keep weights within ~lr of each other
      for k in solo:
        np.testing.assert_allclose(stacked[k], solo[k], rtol=2e-3, err_msg=k)
    with open(os.path.join(run.workdir, "config.json")) as f:
      assert json.load(f) == json.loads(json.dumps(run.config.to_dict()))
  # The two runs differ (their own β).
  assert len({_summary(r.workdir)["train/loss"] for r in sweep.expand(config, workdir)}) == 2


def test_cgan_sweep_runs_equal_solo_runs(kmnist_dir, tmp_path):
  config = on_real_kmnist(cgan.get_config(), kmnist_dir, tmp_path, train_split="test[:256]",
                          num_epochs=1, batch_size=32)
  config.model.architecture = "mlp"
  config.model.hidden = 16
  config.figures.samples_per_style = 1
  config.figures.progress_every_epochs = 0
  config.eval.at_end_of_training = False
  with config.unlocked():
    config.sweep = cgan_sweep.get_config().sweep
  config.sweep.loss = ("bce",)
  config.sweep.learning_rate = (1e-4, 2e-4)
  config.sweep.seed = (0,)
  config.sweep.sharing = "vmap"
  workdir = str(tmp_path / "sweep")
  sweep.run_sweep(config, workdir)
  runs = sweep.expand(config, workdir)
  with open(os.path.join(runs[0].workdir, "timing.json")) as f:
    assert json.load(f)["sharing"] == "vmap"  # 2 runs, one program
  for run in runs:
    solo = _solo(run.config, str(tmp_path / ("solo_" + run.name)))
    stacked = _summary(run.workdir)
    for k in solo:
      np.testing.assert_allclose(stacked[k], solo[k], rtol=1e-3, atol=1e-4, err_msg=k)
  assert _summary(runs[0].workdir)["train/d_loss"] != _summary(runs[1].workdir)["train/d_loss"]


def test_killed_sweep_resumes_to_the_same_results_and_extends(kmnist_dir, tmp_path,
                                                             monkeypatch):
  config = _tiny_sweep(kmnist_dir, tmp_path, beta=(1.0, 4.0), latent_dim=(2,), seed=(0,))
  config.sweep.sharing = "vmap"
  config.train.num_epochs = 2
  full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
  sweep.run_sweep(config, full)

  die_after_save(monkeypatch, 4)  # end of epoch 1, after the first run's save only
  with pytest.raises(Killed):
    sweep.run_sweep(config, killed)
  monkeypatch.undo()
  sweep.run_sweep(config, killed)
  for name in ("results.csv", "results.md"):
    assert open(os.path.join(full, name)).read() == open(os.path.join(killed, name)).read()
  for run in sweep.expand(config, killed):
    _, a = latest_checkpoint_state(run.workdir)
    _, b = latest_checkpoint_state(run.workdir.replace(killed, full))
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"])):
      np.testing.assert_array_equal(x, y)

  # More seeds: only the new runs train; the finished ones are reused untouched.
  done = {r.name: os.path.getmtime(os.path.join(r.workdir, "summary.json"))
          for r in sweep.expand(config, full)}
  config.sweep.seed = (0, 1)
  out = sweep.run_sweep(config, full)
  assert out["runs"] == 4 and out["trained"] == 2
  for r in sweep.expand(config, full):
    if r.name in done:
      assert os.path.getmtime(os.path.join(r.workdir, "summary.json")) == done[r.name]
  rows = out["results"]
  assert [row["n"] for row in rows] == [2, 2]
  # The table and figures rebuild from the finished runs without training.
  csv_before = open(os.path.join(full, "results.csv")).read()
  os.remove(os.path.join(full, "results.csv"))
  assert launcher.run(config, full, mode="results") == 0
  assert open(os.path.join(full, "results.csv")).read() == csv_before
  for name in ("rate_distortion.png", "metrics_vs_beta.png", "eval_curves.png", "samples.png"):
    assert os.path.isfile(os.path.join(full, "figures", name)), name
  page = open(os.path.join(full, "report.html")).read()
  assert "runs/beta=1.0,latent_dim=2,seed=1/report.html" in page


def test_a_sweep_run_is_a_normal_run(kmnist_dir, tmp_path):
  """--mode=evaluate, kjax.generate and a plain re-launch work on one run of a sweep."""
  config = _tiny_sweep(kmnist_dir, tmp_path, beta=(4.0,), latent_dim=(2,), seed=(0, 1))
  config.sweep.sharing = "vmap"
  workdir = str(tmp_path / "sweep")
  sweep.run_sweep(config, workdir)
  run = sweep.expand(config, workdir)[1]
  assert launcher.run(run.config, run.workdir, mode="evaluate") == 0
  assert os.path.isfile(os.path.join(run.workdir, "eval", "metrics.json"))
  assert os.path.isfile(os.path.join(run.workdir, "report.html"))
  loaded = generate.load_run(run.workdir)
  assert loaded.config.seed == 1
  before = _summary(run.workdir)
  assert train.train(run.config, run.workdir).summary == before  # nothing left to train
  with pytest.raises(errors.ConfigError, match="holds a sweep; a single run needs its own"):
    train.train(run.config, workdir)


def test_results_arithmetic_against_a_hand_computation(tmp_path):
  runs = []
  for beta, seed, nelbo in ((1.0, 0, 100.0), (1.0, 1, 104.0), (1.0, 2, 99.0), (4.0, 0, 120.0)):
    runs.append({"name": f"b{beta}s{seed}", "settings": {"objective.beta": beta, "seed": seed},
                 "metrics": {"eval/nelbo": nelbo}})
  keys, names, rows = results.table(runs)
  assert keys == ["objective.beta"] and names == ["eval/nelbo"]
  assert [row["n"] for row in rows] == [3, 1]
  mean, std = rows[0]["stats"]["eval/nelbo"]
  assert mean == pytest.approx(101.0)
  assert std == pytest.approx(np.sqrt(((100 - 101) ** 2 + (104 - 101) ** 2 + (99 - 101) ** 2) / 2))
  assert rows[1]["stats"]["eval/nelbo"][0] == 120.0 and np.isnan(rows[1]["stats"]["eval/nelbo"][1])
  results.write_csv(str(tmp_path / "r.csv"), keys, names, rows)
  lines = open(tmp_path / "r.csv").read().splitlines()
  assert lines[0] == "beta,n,eval/nelbo_mean,eval/nelbo_std"
  assert lines[2] == "4.0,1,120.0,"
  assert "| 1.0 | 3 | 101 ± 2.6 |" in results.markdown(keys, names, rows)


def test_sweep_axes_override_on_the_command_line(tmp_path):
  """The issue's exact flags parse into tuples; the grid they make is checked at once."""
  import subprocess  # noqa: PLC0415
  import sys  # noqa: PLC0415
  from tests.conftest import REPO  # noqa: PLC0415
  workdir = tmp_path / "never"
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "launch.py"), "--config=configs/beta_vae_sweep.py",
       f"--workdir={workdir}", "--config.sweep.beta=(1.0,4.0)", "--config.sweep.seed=(0,1)",
       "--config.sweep.latent_dim=(2,)", "--config.sweep.max_runs=3"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "kjax: error: the sweep has 4 runs, more than config.sweep.max_runs=3; raise it or "
      "sweep fewer values")
  assert not workdir.exists()


def test_study_configs_expand(tmp_path):
  assert len(sweep.expand(beta_vae_sweep.get_config(), str(tmp_path))) == 30
  cvae_runs = sweep.expand(cvae_sweep.get_config(), str(tmp_path))
  assert len(cvae_runs) == 12 and len(sweep.groups(cvae_runs, "auto", "cpu")) == 4
  assert cvae_runs[0].name == "architecture=mlp,latent_dim=2,seed=0"
  assert len(sweep.expand(cgan_sweep.get_config(), str(tmp_path))) == 12


def test_a_diverging_run_is_marked_and_the_others_finish(kmnist_dir, tmp_path, monkeypatch):
  from kjax.tasks import vae as vae_task  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  original = vae_task.BetaVAETask.train_step
  def poisoned(self, state, batch, key):  # β = 8 blows up, β = 1 trains
    state, metrics = original(self, state, batch, key)
    bad = jnp.where(state.hparams["beta"] > 5.0, jnp.nan, 1.0)
    return state, {k: v * bad for k, v in metrics.items()}
  monkeypatch.setattr(vae_task.BetaVAETask, "train_step", poisoned)
  config = _tiny_sweep(kmnist_dir, tmp_path, beta=(1.0, 8.0), latent_dim=(2,), seed=(0,))
  config.sweep.sharing = "vmap"
  workdir = str(tmp_path / "sweep")
  out = sweep.run_sweep(config, workdir)
  good, bad = sweep.expand(config, workdir)
  assert os.path.isfile(os.path.join(bad.workdir, "diverged.json"))
  assert not os.path.exists(os.path.join(bad.workdir, "summary.json"))
  assert np.isfinite(_summary(good.workdir)["eval/nelbo"])
  assert [row["n"] for row in out["results"]] == [1]
  with open(os.path.join(bad.workdir, "diverged.json")) as f:
    record = json.load(f)
  assert (record["step"], record["epoch"], record["last_good_checkpoint"]) == (4, 1, None)
  assert "beta=8.0,latent_dim=2,seed=0 (diverged at step 4)" in open(
      os.path.join(workdir, "results.md")).read()
  assert sweep.run_sweep(config, workdir)["trained"] == 0  # not retried
