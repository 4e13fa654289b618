"""Conditional VAE (Shyam (2024), "Conditional Generation with VAE and GAN"): shapes per
architecture, conditioning, batch norm state, and its training task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cvae as cvae_config
from kjax import tasks
from kjax.models import cvae


@pytest.mark.parametrize("architecture", cvae.ARCHITECTURES)
@pytest.mark.parametrize("num_classes", [49])
def test_shapes(architecture, num_classes):
  model = cvae.ConditionalVAE(num_classes=num_classes, architecture=architecture)
  x = jax.random.uniform(jax.random.key(0), (6, 28, 28, 1))
  labels, styles = jnp.arange(6) % num_classes, jnp.arange(6) % 2
  variables = model.init({"params": jax.random.key(1), "latent": jax.random.key(2)},
                         x, labels, styles)
  assert ("batch_stats" in variables) == (architecture == "mlp_bn")
  logits, z_mean, z_logvar = model.apply(variables, x, labels, styles,
                                         rngs={"latent": jax.random.key(3)})
  assert logits.shape == (6, 28, 28, 1) and z_mean.shape == z_logvar.shape == (6, 2)
  decoded = model.apply(variables, jnp.zeros((6, 2)), labels, styles,
                        method=cvae.ConditionalVAE.decode)
  assert decoded.shape == (6, 28, 28, 1)


def test_shyam_mlp_parameter_shapes():
  """784 + 49 + 2 → 144 → 2 and 2 + 49 + 2 → 144 → 784, as in Shyam (2024)."""
  model = cvae.ConditionalVAE(num_classes=49)
  params = model.init({"params": jax.random.key(0), "latent": jax.random.key(1)},
                      jnp.zeros((1, 28, 28, 1)), jnp.zeros(1, int), jnp.zeros(1, int))["params"]
  assert params["z_mean"]["kernel"].shape == (144, 2)
  assert params["logits"]["kernel"].shape == (144, 784)
  assert params["encoder_trunk"]["Dense_0"]["kernel"].shape == (784 + 49 + 2, 144)
  assert params["decoder_trunk"]["Dense_0"]["kernel"].shape == (2 + 49 + 2, 144)


@pytest.mark.parametrize("architecture", cvae.ARCHITECTURES)
def test_decoder_depends_on_class_and_style(architecture):
  model = cvae.ConditionalVAE(num_classes=10, architecture=architecture)
  variables = model.init({"params": jax.random.key(0), "latent": jax.random.key(1)},
                         jnp.zeros((2, 28, 28, 1)), jnp.zeros(2, int), jnp.zeros(2, int))
  z = jnp.zeros((3, 2))
  decode = lambda c, s: model.apply(variables, z, jnp.full(3, c), jnp.full(3, s),
                                    method=cvae.ConditionalVAE.decode)
  assert not np.allclose(decode(1, 0), decode(2, 0))
  assert not np.allclose(decode(1, 0), decode(1, 1))


def test_batch_norm_statistics_update_only_in_training():
  model = cvae.ConditionalVAE(num_classes=10, architecture="mlp_bn")
  x = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1))
  labels, styles = jnp.arange(8) % 10, jnp.arange(8) % 2
  variables = model.init({"params": jax.random.key(1), "latent": jax.random.key(2)},
                         x, labels, styles)
  _, updated = model.apply(variables, x, labels, styles, train=True, mutable=["batch_stats"],
                           rngs={"latent": jax.random.key(3)})
  before = jax.tree.leaves(variables["batch_stats"])
  after = jax.tree.leaves(updated["batch_stats"])
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_unknown_architecture():
  model = cvae.ConditionalVAE(num_classes=10, architecture="resnet")
  with pytest.raises(ValueError, match="architecture='resnet' is not one of"):
    model.init({"params": jax.random.key(0), "latent": jax.random.key(1)},
               jnp.zeros((1, 28, 28, 1)), jnp.zeros(1, int), jnp.zeros(1, int))


# --- The CVAE as a training task ------------------------------------------------------



def _tiny_cvae(architecture="mlp"):
  config = cvae_config.get_config()
  config.data.name = "kmnist"
  config.model.architecture = architecture
  config.model.hidden = 32
  config.model.channels = (8, 16)
  return config


def _batch(n=16):
  k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
  return {"images": jax.random.randint(k1, (n, 28, 28, 1), 0, 256).astype(jnp.uint8),
          "labels": jax.random.randint(k2, (n,), 0, 10),
          "styles": jax.random.randint(k3, (n,), 0, 2)}


@pytest.mark.parametrize("architecture", cvae.ARCHITECTURES)
def test_cvae_train_step_lowers_the_loss_and_keeps_batch_stats(architecture):
  task = tasks.get_task(_tiny_cvae(architecture), None)
  state = task.init_state(jax.random.key(0))
  assert bool(state.batch_stats) == (architecture == "mlp_bn")
  step = jax.jit(task.train_step)
  batch = _batch()
  first = None
  for s in range(30):
    new, metrics = step(state, batch, jax.random.key(s))
    if architecture == "mlp_bn":  # running statistics move in training, not in evaluation
      assert not all(np.array_equal(a, b) for a, b in
                     zip(jax.tree.leaves(new.batch_stats), jax.tree.leaves(state.batch_stats)))
    state = new
    first = float(metrics["loss"]) if first is None else first
  assert float(metrics["loss"]) < first
  sums = jax.jit(task.eval_sums)(state, batch, jnp.arange(16) < 10, jax.random.key(0))
  assert float(sums["count"]) == 10
  np.testing.assert_allclose(sums["nelbo"], sums["rec"] + sums["kl"], rtol=1e-5)


def test_cvae_samples_follow_the_requested_class_and_style():
  task = tasks.get_task(_tiny_cvae(), None)
  state = task.init_state(jax.random.key(0))
  z = jax.random.normal(jax.random.key(1), (4, 2))
  ones, zeros = jnp.ones(4, jnp.int32), jnp.zeros(4, jnp.int32)
  base = task.sample(state, z, zeros, zeros)
  assert base.shape == (4, 28, 28, 1) and 0 <= float(base.min()) and float(base.max()) <= 1
  assert not np.allclose(task.sample(state, z, ones, zeros), base)
  assert not np.allclose(task.sample(state, z, zeros, ones), base)
