"""TensorBoard as researchers read it: train curves every log step, the learning rate and
throughput, the final evaluation and the HPARAMS session, read back with TensorBoard's own
event reader."""

import json
import math
import os
import shutil

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from configs import beta_vae, cvae
from kjax import experiment, figures, metric_writers, train
from kjax.tasks import vae as vae_task
from tests.conftest import Killed, die_after_save, on_real_kmnist

STEPS_PER_EPOCH, EPOCHS, LOG_EVERY, CHECKPOINT_EVERY = 8, 2, 3, 5
TRAIN_METRICS = ("loss", "rec", "kl", "nelbo")


def _tiny_mlp_config(kmnist_dir, tmp_path):
  """An MLP β-VAE on 512 real KMNIST images, batch 64 (8 steps per epoch), 2 epochs; logs
  every 3 steps and checkpoints every 5 so that log, checkpoint and epoch-end steps
  interleave; a seconds-long evaluation without the classifier metrics."""
  config = on_real_kmnist(beta_vae.get_config(), kmnist_dir, tmp_path, "test[:512]",
                          "test[9800:]", EPOCHS, 64)
  config.model.architecture = "mlp"
  config.model.mlp_widths = (32,)
  config.train.log_every_steps = LOG_EVERY
  config.train.checkpoint_every_steps = CHECKPOINT_EVERY
  config.train.eval_batch_size = 200
  config.eval.classifier_workdir = "none"
  config.eval.iwae_samples = 8
  config.eval.iwae_chunk_size = 8
  config.eval.iwae_max_examples = 20
  config.eval.num_generated = 50
  config.eval.tsne_max_points = 50
  config.figures.grid_size = 3
  return config


def _without_final_figures(monkeypatch):
  """Skips the end-of-training figures (seconds of matplotlib per run; tests/test_train.py
  checks them): this file reads only the events."""
  monkeypatch.setattr(vae_task.BetaVAETask, "final_figures", lambda *args: [])
  monkeypatch.setattr(figures, "plot_style_examples", lambda path, *args, **kwargs: path)


def _log_steps():
  """The steps at which the loop logs (one step per call): every LOG_EVERY steps, every
  epoch end and every checkpoint step."""
  return [s for s in range(1, STEPS_PER_EPOCH * EPOCHS + 1)
          if s % LOG_EVERY == 0 or s % STEPS_PER_EPOCH == 0 or s % CHECKPOINT_EVERY == 0]


def _read(workdir):
  acc = event_accumulator.EventAccumulator(workdir, size_guidance={"scalars": 0, "tensors": 0})
  acc.Reload()
  return acc


def _scalars(acc, tag):
  """``{step: value}`` of a scalar tag; a step logged twice fails."""
  events = acc.Scalars(tag)
  steps = [e.step for e in events]
  assert len(steps) == len(set(steps)), (tag, steps)
  return {e.step: e.value for e in events}


@pytest.fixture(scope="module")
def finished_run(kmnist_dir, tmp_path_factory):
  """``(config, workdir, events)`` of one tiny training + evaluation."""
  root = tmp_path_factory.mktemp("tensorboard")
  config = _tiny_mlp_config(kmnist_dir, root)
  workdir = str(root / "run")
  with pytest.MonkeyPatch.context() as monkeypatch:
    _without_final_figures(monkeypatch)
    experiment.train_and_evaluate(config, workdir)
  return config, workdir, _read(workdir)


def test_train_steps_every_log_step(finished_run):
  config, workdir, acc = finished_run
  steps = _log_steps()
  assert steps == [3, 5, 6, 8, 9, 10, 12, 15, 16]
  for name in TRAIN_METRICS:
    values = _scalars(acc, f"train_steps/{name}")
    assert sorted(values) == steps, name
    assert all(math.isfinite(v) for v in values.values()), name
  # The windows' means, weighted by their steps, give each epoch's mean of metrics.jsonl:
  # the sums were differenced, not taken since the epoch's start, and reset at its end.
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  for name in TRAIN_METRICS:
    values = _scalars(acc, f"train_steps/{name}")
    for row in rows:
      end, start = row["step"], row["step"] - STEPS_PER_EPOCH
      window = [s for s in steps if start < s <= end]
      weighted = sum(values[s] * (s - p) for s, p in zip(window, [start] + window[:-1]))
      np.testing.assert_allclose(weighted / STEPS_PER_EPOCH, row[f"train/{name}"], rtol=1e-5,
                                 err_msg=f"{name} epoch {row['epoch']}")
  lr = _scalars(acc, "train_steps/learning_rate")
  assert sorted(lr) == steps
  np.testing.assert_allclose(list(lr.values()), config.optim.learning_rate, rtol=1e-6)
  rate = _scalars(acc, "perf/images_per_s")
  assert sorted(rate) == steps and all(v > 0 and math.isfinite(v) for v in rate.values())


def test_per_epoch_tags_and_metrics_jsonl_unchanged(finished_run):
  _, workdir, acc = finished_run
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in rows] == [8, 16] and [r["epoch"] for r in rows] == [1, 2]
  assert not any(k.startswith(("train_steps/", "perf/")) for r in rows for k in r)
  for prefix in ("train", "eval"):
    for name in TRAIN_METRICS:
      values = _scalars(acc, f"{prefix}/{name}")
      assert sorted(values) == [8, 16], (prefix, name)
      for row in rows:
        np.testing.assert_allclose(values[row["step"]], row[f"{prefix}/{name}"], rtol=1e-6)


def test_evaluation_scalars_equal_metrics_json(finished_run):
  _, workdir, acc = finished_run
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    result = json.load(f)
  expected = {k: v for k, v in result["metrics"].items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
  assert {"iwae_nll", "nelbo"} <= set(expected), sorted(expected)
  tags = {t for t in acc.Tags()["scalars"] if t.startswith("evaluation/")}
  assert tags == {f"evaluation/{k}" for k in expected}
  for name, value in expected.items():
    logged = _scalars(acc, f"evaluation/{name}")
    assert list(logged) == [result["run"]["step"]], name
    np.testing.assert_allclose(logged[result["run"]["step"]], np.float32(value), rtol=1e-6,
                               err_msg=name)


def test_hparams_session_has_the_config_and_the_evaluation_metrics(finished_run):
  config, workdir, acc = finished_run
  content = acc.PluginTagToContent("hparams")
  assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info",
                          "_hparams_/session_end_info"}
  start = plugin_data_pb2.HParamsPluginData.FromString(
      content["_hparams_/session_start_info"]).session_start_info
  hparams = start.hparams
  assert hparams["objective.beta"].number_value == config.objective.beta
  assert hparams["model.latent_dim"].number_value == config.model.latent_dim
  assert hparams["seed"].number_value == config.seed
  assert hparams["model.architecture"].string_value == "mlp"
  assert hparams["model.mlp_widths"].string_value == "(32,)"
  assert hparams["data.verify_checksums"].bool_value is True
  experiment_pb = plugin_data_pb2.HParamsPluginData.FromString(
      content["_hparams_/experiment"]).experiment
  metric_tags = {m.name.tag for m in experiment_pb.metric_infos}
  assert "evaluation/iwae_nll" in metric_tags
  assert metric_tags == {t for t in acc.Tags()["scalars"] if t.startswith("evaluation/")}
  # In the run's own logdir: no timestamped sub-directory as SummaryWriter.add_hparams makes.
  assert not [d for d in os.listdir(workdir)
              if os.path.isdir(os.path.join(workdir, d)) and any(
                  f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(workdir, d)))]


def test_log_evaluation_keeps_finite_scalars_and_flattens_the_config(tmp_path):
  metrics = {"a": 1.5, "b": 2, "c": [1.0, 2.0], "d": None, "e": float("nan"), "f": True,
             "g": "text", "h": np.float32(0.25), "i": float("inf")}
  assert metric_writers.evaluation_scalars(metrics) == {
      "evaluation/a": 1.5, "evaluation/b": 2.0, "evaluation/h": 0.25}
  config = {"seed": 3, "objective": {"beta": 4.0, "name": "beta_vae"},
            "model": {"channels": (8, 16), "conv_impl": None, "bn": False}}
  assert metric_writers.flatten_config(config) == {
      "seed": 3, "objective.beta": 4.0, "objective.name": "beta_vae",
      "model.channels": "(8, 16)", "model.bn": False}
  metric_writers.log_evaluation(str(tmp_path), 7, config, metrics)
  metric_writers.log_evaluation(str(tmp_path), 9, config, {"a": 3.0})  # a rerun appends
  acc = _read(str(tmp_path))
  assert _scalars(acc, "evaluation/a") == {7: 1.5, 9: 3.0}
  assert _scalars(acc, "evaluation/h") == {7: 0.25}
  assert len([f for f in os.listdir(tmp_path) if f.startswith("events.out.tfevents")]) == 2


def test_resume_hides_orphaned_steps_and_restarts_the_window(finished_run, monkeypatch,
                                                             tmp_path):
  """A run killed after its checkpoint at step 10 and resumed from the one at step 5 (the
  newer one deleted, as if the kill had come before it): TensorBoard shows steps 6-10 once,
  with the resumed run's values, which equal those of the uninterrupted run."""
  config, _, uninterrupted = finished_run
  workdir = str(tmp_path / "run")
  _without_final_figures(monkeypatch)
  die_after_save(monkeypatch, 10)
  write_scalars = metric_writers.MetricWriter.write_scalars

  def write_then_close(self, step, scalars):  # the killed run's events reach the disk
    write_scalars(self, step, scalars)
    if step == 10:
      self._tb.close()

  monkeypatch.setattr(metric_writers.MetricWriter, "write_scalars", write_then_close)
  with pytest.raises(Killed):
    train.train(config, workdir)
  monkeypatch.undo()
  _without_final_figures(monkeypatch)
  shutil.rmtree(os.path.join(workdir, "checkpoints", "10"))
  orphaned = _read(workdir)
  assert max(_scalars(orphaned, "train_steps/loss")) == 10  # the test can see a duplicate
  train.train(config, workdir)
  acc = _read(workdir)
  for tag in [f"train_steps/{m}" for m in TRAIN_METRICS] + ["train_steps/learning_rate"]:
    values = _scalars(acc, tag)  # fails on a step shown twice
    assert sorted(values) == _log_steps(), tag
    expected = _scalars(uninterrupted, tag)
    for step in values:
      np.testing.assert_allclose(values[step], expected[step], rtol=1e-5, err_msg=f"{tag} {step}")
  assert sorted(_scalars(acc, "train/loss")) == [8, 16]


def test_each_run_of_a_sweep_gets_its_own_values(kmnist_dir, tmp_path, monkeypatch):
  """Two runs stacked in one program (β and learning rate per run): each events file has
  that run's learning rate and train curves."""
  configs = []
  for beta, lr in ((1.0, 1e-3), (4.0, 3e-4)):
    config = _tiny_mlp_config(kmnist_dir, tmp_path)
    config.train.num_epochs = 1
    config.objective.beta, config.optim.learning_rate = beta, lr
    configs.append(config)
  workdirs = [str(tmp_path / "beta1"), str(tmp_path / "beta4")]
  _without_final_figures(monkeypatch)
  train.train_runs(configs, workdirs, sharing="vmap")
  runs = [_read(w) for w in workdirs]
  steps = [s for s in _log_steps() if s <= STEPS_PER_EPOCH]
  for config, workdir, acc in zip(configs, workdirs, runs):
    lr = _scalars(acc, "train_steps/learning_rate")
    assert sorted(lr) == steps
    np.testing.assert_allclose(list(lr.values()), config.optim.learning_rate, rtol=1e-6)
    loss = _scalars(acc, "train_steps/loss")
    row = json.loads(open(os.path.join(workdir, "metrics.jsonl")).readline())
    weighted = sum(loss[s] * (s - p) for s, p in zip(steps, [0] + steps[:-1]))
    np.testing.assert_allclose(weighted / STEPS_PER_EPOCH, row["train/loss"], rtol=1e-5)
  first, second = (_scalars(acc, "train_steps/loss") for acc in runs)
  assert not np.allclose(list(first.values()), list(second.values()))


def test_every_log_step_inside_a_chunk_gets_its_point(kmnist_dir, tmp_path, monkeypatch):
  """``log_every_steps`` is honoured whatever ``steps_per_call``: chunks of 8 steps give
  the points at steps 2, 4, ..., 16, with the values of one step per call."""
  _without_final_figures(monkeypatch)
  values = {}
  for steps_per_call in ("8", "1"):
    config = _tiny_mlp_config(kmnist_dir, tmp_path / steps_per_call)
    config.train.steps_per_call = steps_per_call
    config.train.log_every_steps = 2
    config.train.checkpoint_every_steps = 16
    workdir = str(tmp_path / steps_per_call / "run")
    run = train.train(config, workdir)
    assert run.timing["choices"]["steps_per_call"] == int(steps_per_call)
    acc = _read(workdir)
    values[steps_per_call] = {name: _scalars(acc, f"train_steps/{name}")
                              for name in (*TRAIN_METRICS, "learning_rate")}
  for name, chunked in values["8"].items():
    assert sorted(chunked) == list(range(2, 17, 2)), name
    np.testing.assert_allclose([chunked[s] for s in sorted(chunked)],
                               [values["1"][name][s] for s in sorted(chunked)], rtol=1e-4,
                               err_msg=name)


def test_log_every_20_steps_of_a_two_epoch_cvae_with_auto_chunks(kmnist_dir, tmp_path,
                                                                  monkeypatch):
  """Issue 26's case: ``--config.train.log_every_steps=20`` on a 2-epoch CVAE run of 160
  steps, ``steps_per_call='auto'`` (80: one chunk per epoch), gives the points 20, ..., 160
  (before, one point per chunk: 80 and 160)."""
  _without_final_figures(monkeypatch)
  config = on_real_kmnist(cvae.get_config(), kmnist_dir, tmp_path, train_split="test[:8000]",
                          batch_size=100)
  config.train.steps_per_call = "auto"
  config.train.log_every_steps = 20
  config.train.checkpoint_every_steps = 160
  config.eval.at_end_of_training = False
  workdir = str(tmp_path / "run")
  run = train.train(config, workdir)
  assert run.timing["choices"]["steps_per_call"] == 80
  acc = _read(workdir)
  for name in ("nelbo", "learning_rate"):
    assert sorted(_scalars(acc, f"train_steps/{name}")) == list(range(20, 161, 20)), name
