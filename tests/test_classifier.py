"""The domain evaluator (issue 4): the CNN classifier trains on real KMNIST."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import classifier as classifier_config
from kjax import errors, generate, tasks
from kjax.evaluation import domain


def test_classifier_beats_chance_after_a_short_training(kmnist_classifier):
  workdir, summary = kmnist_classifier
  assert summary["step"] == 2 * (2000 // 64)
  assert summary["eval/accuracy"] > 0.6  # chance: 0.1
  assert summary["train/loss"] < np.log(10)
  assert os.path.isfile(os.path.join(workdir, "figures", "loss_curves.png"))
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    evaluation = json.load(f)["metrics"]
  assert evaluation["accuracy"] == pytest.approx(summary["eval/accuracy"])
  assert 0.6 < evaluation["balanced_accuracy"] <= 1.0
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:  # the hash runs quote
    assert json.load(f)["protocol"]["params_sha256"] == domain.load_classifier(
        workdir, "kmnist").params_sha256
  task = tasks.get_task(classifier_config.get_config(), None)
  state = task.init_state(jax.random.key(0))
  assert task.features(state, jnp.zeros((3, 28, 28, 1))).shape == (3, 128)
  with pytest.raises(errors.ConfigError, match="holds a classifier run"):
    generate.load_run(workdir)
