"""Conditional VAE (seed 003): shapes per architecture, conditioning, batch norm state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_seed_mlp_parameter_shapes():
  """784 + 49 + 2 → 144 → 2 and 2 + 49 + 2 → 144 → 784, as in seed 003."""
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
