"""The domain evaluator (issue 4): the CNN classifier trains on real KMNIST."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import classifier as classifier_config
from kjax import errors, generate, tasks, train
from tests.conftest import on_real_kmnist


def test_classifier_beats_chance_after_a_short_training(kmnist_dir, tmp_path):
  config = on_real_kmnist(classifier_config.get_config(), kmnist_dir, tmp_path,
                          train_split="test[:2000]", eval_split="test[9000:]", batch_size=64)
  config.train.checkpoint_every_steps = 1000
  workdir = str(tmp_path / "clf")
  summary = train.train_and_evaluate(config, workdir)
  assert summary["step"] == 2 * (2000 // 64)
  assert summary["eval/accuracy"] > 0.6  # chance: 0.1
  assert summary["train/loss"] < np.log(10)
  assert os.path.isfile(os.path.join(workdir, "figures", "loss_curves.png"))
  task = tasks.get_task(config)
  state = task.init_state(jax.random.key(0))
  assert task.features(state, jnp.zeros((3, 28, 28, 1))).shape == (3, 128)
  with pytest.raises(errors.ConfigError, match="holds a classifier run"):
    generate.load_run(workdir)
