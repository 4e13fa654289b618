"""A new model family defined entirely in this file, registered through the public API
(``kjax.tasks.register``), then trained, resumed, swept (stacked), evaluated and sampled
from, touching no kjax module: the proof that a family needs its Task, its module and a
config, nothing else (issue 26).

The family: a plain autoencoder (an MLP encoder to ``latent_dim`` numbers and back, BCE
reconstruction loss; Hinton & Salakhutdinov 2006), sampled by decoding ``z ~ N(0, I)``.
"""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import kjax
from kjax import config_fields
from kjax import configs
from kjax import errors
from kjax import generate
from kjax import launcher
from kjax import tasks
from kjax import validation
from tests.conftest import on_real_kmnist


class Autoencoder(nn.Module):
  """x float ``[B, H, W, 1]`` → z float ``[B, latent_dim]`` → Bernoulli logits of x."""

  latent_dim: int
  hidden: int
  image_shape: tuple

  def setup(self):
    self.enc = nn.Dense(self.hidden)
    self.to_z = nn.Dense(self.latent_dim)
    self.dec = nn.Dense(self.hidden)
    self.to_x = nn.Dense(int(np.prod(self.image_shape)))

  def encode(self, x):
    return self.to_z(nn.relu(self.enc(x.reshape(x.shape[0], -1))))

  def decode(self, z):
    return self.to_x(nn.relu(self.dec(z))).reshape(z.shape[0], *self.image_shape)

  def __call__(self, x):
    return self.decode(self.encode(x))


class AutoencoderTask(tasks.Task):
  """The plain autoencoder as a kjax model family."""

  name = "autoencoder"
  conditional = False
  train_metrics = eval_metrics = log_metrics = ("bce",)
  # its own field, and those of the figures it keeps from tasks.Task
  fields = {**tasks.FIGURE_FIELDS, **config_fields.rows(
      config_fields.Field("model.latent_dim", "int", "dimension of the code z", 1))}

  def __init__(self, config, info, num_train_examples):
    super().__init__(config, info, num_train_examples)
    self.model = Autoencoder(config.model.latent_dim, config.model.hidden, self.image_shape)

  def init_state(self, key):
    params = self.model.init(key, jnp.zeros((1, *self.image_shape)))["params"]
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=self.config.optim.learning_rate)
    return tasks.TrainState.create(apply_fn=self.model.apply, params=params, tx=tx,
                                   hparams={})

  def _bce(self, params, images):
    x = images.astype(jnp.float32) / 255.0
    logits = self.model.apply({"params": params}, x)
    return optax.sigmoid_binary_cross_entropy(logits, x).sum(axis=(1, 2, 3))

  def train_step(self, state, batch, key):
    del key
    loss, grads = jax.value_and_grad(lambda p: self._bce(p, batch["images"]).mean())(
        state.params)
    return state.apply_gradients(grads=grads), {"bce": loss}

  def eval_sums(self, state, batch, mask, key):
    del key
    m = mask.astype(jnp.float32)
    return {"bce": (self._bce(state.params, batch["images"]) * m).sum(), "count": m.sum()}

  def sample(self, state, z, labels, styles):
    del labels, styles
    logits = self.model.apply({"params": state.params}, z, method=Autoencoder.decode)
    return jax.nn.sigmoid(logits)


@pytest.fixture(scope="module")
def family():
  tasks.register(AutoencoderTask)
  yield AutoencoderTask
  tasks.unregister("autoencoder")


def _config(kmnist_dir, tmp_path) -> ml_collections.ConfigDict:
  """The family's config: the shared sections of a shipped config, its own model."""
  shipped = configs.get_config("cvae")
  config = ml_collections.ConfigDict({
      "seed": 0, "data": shipped.data.to_dict(), "train": shipped.train.to_dict(),
      "eval": shipped.eval.to_dict(), "mesh": shipped.mesh.to_dict(),
      "figures": {"samples_per_style": 2, "progress_every_epochs": 0},
      "model": {"name": "autoencoder", "latent_dim": 4, "hidden": 32},
      "optim": {"learning_rate": 1e-3}})
  config = on_real_kmnist(config, kmnist_dir, tmp_path, train_split="test[:128]",
                          eval_split="test[9900:]", num_epochs=2, batch_size=32)
  config.train.checkpoint_every_steps = 4
  config.eval.classifier_workdir = "none"
  config.eval.num_generated = 50
  return config


def test_register_refuses_a_taken_name_and_a_non_task(family):
  with pytest.raises(errors.ConfigError, match="'autoencoder' of AutoencoderTask is taken"):
    tasks.register(AutoencoderTask)
  with pytest.raises(errors.ConfigError, match="expected a subclass of kjax.tasks.Task"):
    tasks.register(dict)
  with pytest.raises(errors.ConfigError, match="kjax's own"):
    tasks.unregister("cvae")


def test_the_family_is_checked_by_its_own_rows(family, kmnist_dir, tmp_path):
  config = _config(kmnist_dir, tmp_path)
  validation.validate_config(config)
  assert family.stackable == ("optim.learning_rate",)  # from the shared row
  config.model.latent_dim = 0
  with pytest.raises(errors.ConfigError, match="config.model.latent_dim=0 is not allowed"):
    validation.validate_config(config)


def test_train_resume_evaluate_and_generate(family, kmnist_dir, tmp_path):
  config = _config(kmnist_dir, tmp_path)
  config.train.num_epochs = 1
  workdir = str(tmp_path / "run")
  first = kjax.train_and_evaluate(config, workdir)
  assert first["step"] == 4 and np.isfinite(first["train/bce"])
  config.train.num_epochs = 2  # resumed from step 4
  second = kjax.train_and_evaluate(config, workdir)
  assert second["step"] == 8 and second["epoch"] == 2
  with open(os.path.join(workdir, "timing.json")) as f:
    assert json.load(f)["steps_run"] == 4
  # the same run uninterrupted gives the same numbers (exact resume)
  whole = kjax.train_and_evaluate(config, str(tmp_path / "whole"))
  assert whole["train/bce"] == second["train/bce"] and whole["eval/bce"] == second["eval/bce"]

  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    metrics = json.load(f)["metrics"]
  assert metrics and all(np.all(np.isfinite(v)) for v in metrics.values()
                         if isinstance(v, (int, float)))
  assert os.path.exists(os.path.join(workdir, "report.html"))
  launcher.dispatch(config, workdir, mode="evaluate")  # --mode=evaluate of the family

  run = generate.load_run(workdir)
  images = generate.generate(run, 0, 0, 5, jax.random.key(1))
  assert images.shape == (5, 28, 28, 1) and 0 <= images.min() and images.max() <= 1


def test_a_stacked_sweep_of_the_family_equals_its_runs_alone(family, kmnist_dir, tmp_path):
  config = _config(kmnist_dir, tmp_path)
  config.eval.at_end_of_training = False
  config.sweep = ml_collections.ConfigDict({
      "learning_rate": (1e-3, 3e-3), "seed": (0,), "max_runs": 4, "sharing": "vmap",
      "shard": "", "executor": "local", "parts": 0})
  out = kjax.train_and_evaluate(config, str(tmp_path / "sweep"))
  assert out["runs"] == 2 and out["trained"] == 2
  with open(os.path.join(tmp_path, "sweep", "timing.json")) as f:
    groups = json.load(f)["invocations"][0]["groups"]
  assert len(groups) == 1 and groups[0]["sharing"] == "vmap"  # one stacked program

  alone = _config(kmnist_dir, tmp_path / "alone")
  alone.eval.at_end_of_training = False
  alone.optim.learning_rate = 3e-3
  single = kjax.train_and_evaluate(alone, str(tmp_path / "alone" / "run"))
  with open(os.path.join(tmp_path, "sweep", "runs", "learning_rate=0.003,seed=0",
                         "summary.json")) as f:
    stacked = json.load(f)
  assert stacked["step"] == single["step"] == 8
  np.testing.assert_allclose(stacked["train/bce"], single["train/bce"], rtol=1e-5)
  np.testing.assert_allclose(stacked["eval/bce"], single["eval/bce"], rtol=1e-5)
