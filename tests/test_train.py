"""Training: vmappable steps, determinism, exact resume, NaN stop, workdir contract."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kjax import checkpointing, configs, errors, experiment, rng, tasks, train, validation
from kjax.tasks import vae as vae_task
from tests.conftest import Killed, die_after_save, latest_checkpoint_state


def _batch(key, lead, n, num_classes=10):
  k1, k2, k3 = jax.random.split(key, 3)
  return {"images": jax.random.randint(k1, (*lead, n, 28, 28, 1), 0, 256).astype(jnp.uint8),
          "labels": jax.random.randint(k2, (*lead, n), 0, num_classes),
          "styles": jax.random.randint(k3, (*lead, n), 0, 2)}


def _params_of_latest_checkpoint(workdir):
  step, state = latest_checkpoint_state(workdir)
  return step, state["params"]


def _summary(workdir):
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)


def test_train_step_is_vmappable_over_runs(tiny_config):
  """A sweep of two runs (β = 1 and 4, own seeds) in one program equals the runs one by one."""
  task = tasks.get_task(tiny_config, None)
  init_keys = jax.random.split(jax.random.key(0), 2)
  betas = jnp.array([1.0, 4.0])
  states = jax.vmap(lambda k, b: task.init_state(k, beta=b))(init_keys, betas)
  batches = _batch(jax.random.key(1), (2,), 8)
  keys = jax.random.split(jax.random.key(2), 2)
  new, metrics = jax.jit(jax.vmap(task.train_step))(states, batches, keys)
  for i in range(2):
    state = jax.tree.map(lambda x: x[i], states)
    assert float(state.hparams["beta"]) == float(betas[i])
    batch = jax.tree.map(lambda x: x[i], batches)
    single, single_metrics = jax.jit(task.train_step)(state, batch, keys[i])
    np.testing.assert_allclose(metrics["loss"][i], single_metrics["loss"], rtol=1e-5)
    # Adam moves a weight whose gradient is at float noise level by up to ±lr either way.
    lr = tiny_config.optim.learning_rate
    for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(new.params)):
      diff = np.abs(np.asarray(a) - np.asarray(b[i]))
      assert diff.mean() < 1e-3 * lr and diff.max() <= 2 * lr + 1e-6
  assert not np.isclose(metrics["loss"][0], metrics["loss"][1])


@pytest.mark.parametrize("name", ["beta_vae", "cvae", "cgan", "classifier", "iwae_mnist"])
def test_fresh_state_is_init_state_as_one_program(name):
  """``Task.fresh_state`` (init_state compiled whole) gives init_state's arrays bit for bit
  (checked for two models: run eagerly, init_state compiles ~60 programs), and for every
  model no JAX value made while tracing stays in the state's static parts (an optimiser
  schedule that kept one would fail in the first step)."""
  config = configs.get_config(name)
  if name == "classifier":
    config.optim.schedule = "cosine"
  task = tasks.get_task(config, 1000)
  key = rng.stream_keys(0)["init"]
  with jax.checking_leaks():
    fresh = task.fresh_state(key)
  if name not in ("beta_vae", "iwae_mnist"):  # the main job's; the one with a schedule
    return
  eager = task.init_state(key)
  assert jax.tree.structure(fresh).num_leaves == jax.tree.structure(eager).num_leaves
  for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(eager), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_workdir_contract_and_determinism(tiny_run, tiny_config, tmp_path):
  # a: the session's tiny run; b: the same config trained again here.
  a, b = tiny_run[1], str(tmp_path / "b")
  summary = experiment.train_and_evaluate(tiny_config, b)
  for name in ("config.json", "metrics.jsonl", "summary.json", "timing.json"):
    assert os.path.isfile(os.path.join(a, name)), name
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(a))
  figures = set(os.listdir(os.path.join(a, "figures")))
  assert {"latent_manifold.png", "latent_grid.png", "interpolation.png", "interpolation.gif",
          "reconstructions.png", "prior_samples.png", "loss_curves.png",
          "style_examples.png"} <= figures
  rows = [json.loads(line) for line in open(os.path.join(a, "metrics.jsonl"))]
  assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [8, 16]
  for key in ("train/loss", "train/rec", "train/kl", "train/nelbo",
              "eval/loss", "eval/rec", "eval/kl", "eval/nelbo"):
    assert np.isfinite(rows[-1][key]), key
  assert np.isclose(rows[-1]["eval/nelbo"], rows[-1]["eval/rec"] + rows[-1]["eval/kl"])
  assert summary == _summary(b)  # the returned summary is the file's
  assert summary == rows[-1] == _summary(a)
  # Same seed, same data: the same numbers and bitwise-identical parameters.
  assert _summary(a) == _summary(b)
  step_a, params_a = _params_of_latest_checkpoint(a)
  step_b, params_b = _params_of_latest_checkpoint(b)
  assert step_a == step_b == 16
  for x, y in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
    np.testing.assert_array_equal(x, y)


def test_resume_mid_epoch_equals_uninterrupted_run(tiny_run, tiny_config, tmp_path, monkeypatch):
  full, resumed = tiny_run[1], str(tmp_path / "resumed")  # full: the uninterrupted run

  die_after_save(monkeypatch, 12)  # mid-epoch 2 (8 steps per epoch); epoch 1 is logged
  with pytest.raises(Killed):
    experiment.train_and_evaluate(tiny_config, resumed)
  assert not os.path.exists(os.path.join(resumed, "summary.json"))
  monkeypatch.undo()
  experiment.train_and_evaluate(tiny_config, resumed)

  assert _summary(resumed) == _summary(full)
  assert open(os.path.join(resumed, "metrics.jsonl")).read() == open(
      os.path.join(full, "metrics.jsonl")).read()
  _, params_full = _params_of_latest_checkpoint(full)
  _, params_resumed = _params_of_latest_checkpoint(resumed)
  for x, y in zip(jax.tree.leaves(params_full), jax.tree.leaves(params_resumed)):
    np.testing.assert_array_equal(x, y)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_config, tmp_path,
                                                               monkeypatch):
  workdir = str(tmp_path / "nan")
  tiny_config.train.log_every_steps = 1000  # checkpoints alone must trigger the check
  original = vae_task.BetaVAETask.train_step
  def poisoned(self, state, batch, key):
    state, metrics = original(self, state, batch, key)
    bad = jnp.where(state.step > 9, jnp.nan, 1.0)
    return state, {k: v * bad for k, v in metrics.items()}
  monkeypatch.setattr(vae_task.BetaVAETask, "train_step", poisoned)
  with pytest.raises(errors.NonFiniteLossError, match="non-finite by step 12.*step 8"):
    experiment.train_and_evaluate(tiny_config, workdir)
  step, params = _params_of_latest_checkpoint(workdir)
  assert step == 8
  assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(params))


def test_resume_with_a_different_experiment_is_refused(tiny_config, tmp_path):
  workdir = str(tmp_path / "w")
  tiny_config.train.num_epochs = 1
  experiment.train_and_evaluate(tiny_config, workdir)
  tiny_config.objective.beta = 1.0
  tiny_config.seed = 7
  # Every difference at once, in one line.
  with pytest.raises(validation.ConfigError, match=r"^2 setting\(s\) differ from .*"
                     r"config.objective.beta=1.0 \(the run has 4.0\); "
                     r"config.seed=7 \(the run has 0\); use another --workdir[^\n]*$"):
    experiment.train_and_evaluate(tiny_config, workdir)
  # Extending training is allowed, and continues from the checkpoint.
  tiny_config.objective.beta = 4.0
  tiny_config.seed = 0
  tiny_config.train.num_epochs = 2
  assert experiment.train_and_evaluate(tiny_config, workdir)["step"] == 16


def test_scanned_chunk_equals_single_steps(tiny_config):
  """steps_per_call > 1 (lax.scan) runs the same steps, batches and keys as a Python loop."""
  task = tasks.get_task(tiny_config, None)
  keys = rng.stream_keys(0)
  data = _batch(jax.random.key(1), (), 64)
  perm = jax.random.permutation(keys["data"], 64)
  def run(num_steps, calls):
    state, sums = task.init_state(keys["init"]), train.zero_sums(task.train_metrics)
    chunk = train.make_train_chunk(task.train_step, 4, 16, num_steps)
    for _ in range(calls):
      state, sums = chunk(state, sums, data, perm, keys["train"])
    return state, sums
  looped, looped_sums = run(1, 4)
  scanned, scanned_sums = run(4, 1)
  assert int(looped.step) == int(scanned.step) == 4 and float(scanned_sums["count"]) == 4
  np.testing.assert_allclose(looped_sums["loss"], scanned_sums["loss"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(looped.params), jax.tree.leaves(scanned.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_beta_vae_trains_on_official_format_k49(tiny_config, synthetic_k49_dir, tmp_path):
  """49 classes end to end on synthetic files in the official K49 format."""
  tiny_config.data.name = "k49"
  tiny_config.data.data_dir = synthetic_k49_dir
  tiny_config.data.train_split = "train"
  tiny_config.data.eval_split = "test[:100]"
  tiny_config.data.verify_checksums = False
  tiny_config.train.num_epochs = 1
  tiny_config.figures.interpolate_classes = (1, 48)
  summary = experiment.train_and_evaluate(tiny_config, str(tmp_path / "k49"))
  assert summary["step"] == 300 // 32 and np.isfinite(summary["eval/nelbo"])
  assert (tmp_path / "k49" / "figures" / "style_examples.png").exists()


def test_a_checkpoint_of_another_model_is_refused_with_one_line(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"), keep=2)
  ckpt.save(3, {"state": {"params": np.zeros(4, np.float32)}})
  ckpt.close()
  ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"), keep=2)
  with pytest.raises(errors.CheckpointMismatchError,
                     match="checkpoint at step 3 in .* does not match the state"):
    ckpt.restore_latest({"state": {"params": np.zeros(4, np.float32), "batch_stats": {"m": np.zeros(2)}}})
  assert ckpt.restore_latest({"state": {"params": np.ones(4, np.float32)}})["state"]["params"].sum() == 0
  ckpt.close()
