"""Model shapes, the reparameterisation key, and sub-pixel = transposed convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kjax.models import vae


@pytest.mark.parametrize("channels", [(32, 64), (32, 64, 128)])
@pytest.mark.parametrize("latent_dim", [1, 2, 10])
def test_beta_vae_shapes(channels, latent_dim):
  model = vae.BetaVAE(latent_dim=latent_dim, channels=channels)
  x = jnp.zeros((5, 28, 28, 1))
  params = model.init({"params": jax.random.key(0), "latent": jax.random.key(1)}, x[:1])
  logits, z_mean, z_logvar = model.apply(params, x, rngs={"latent": jax.random.key(2)})
  assert logits.shape == (5, 28, 28, 1) and logits.dtype == jnp.float32
  assert z_mean.shape == z_logvar.shape == (5, latent_dim)
  z = model.apply(params, jnp.zeros((3, latent_dim)), method=vae.BetaVAE.decode)
  assert z.shape == (3, 28, 28, 1)


def test_reparameterisation_uses_only_the_explicit_key():
  model = vae.BetaVAE(latent_dim=2)
  x = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
  params = model.init({"params": jax.random.key(0), "latent": jax.random.key(1)}, x)
  a = model.apply(params, x, rngs={"latent": jax.random.key(7)})[0]
  b = model.apply(params, x, rngs={"latent": jax.random.key(7)})[0]
  c = model.apply(params, x, rngs={"latent": jax.random.key(8)})[0]
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  with pytest.raises(Exception, match="latent"):
    model.apply(params, x)


@pytest.mark.parametrize("size", [4, 7, 14])
def test_subpixel_equals_conv_transpose(size):
  kernel = jax.random.normal(jax.random.key(0), (3, 3, 5, 6))
  bias = jax.random.normal(jax.random.key(1), (6,))
  x = jax.random.normal(jax.random.key(2), (2, size, size, 5))
  params = {"params": {"kernel": kernel, "bias": bias}}
  ref = vae.Upsample2x(6, "conv_transpose").apply(params, x)
  got = vae.Upsample2x(6, "subpixel").apply(params, x)
  assert got.shape == (2, 2 * size, 2 * size, 6)
  np.testing.assert_allclose(got, ref, atol=1e-5)
  # ... and so are their gradients.
  def loss(p, method):
    return jnp.sum(jnp.sin(vae.Upsample2x(6, method).apply(p, x)))
  g_ref, g_sub = jax.grad(loss)(params, "conv_transpose"), jax.grad(loss)(params, "subpixel")
  for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_sub)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_upsampling_methods_share_parameters_and_function():
  x = jax.random.uniform(jax.random.key(0), (3, 28, 28, 1))
  sub = vae.BetaVAE(latent_dim=2, channels=(32, 64, 128), upsample="subpixel")
  tra = vae.BetaVAE(latent_dim=2, channels=(32, 64, 128), upsample="conv_transpose")
  params = sub.init({"params": jax.random.key(0), "latent": jax.random.key(1)}, x)
  a = sub.apply(params, x, rngs={"latent": jax.random.key(3)})[0]
  b = tra.apply(params, x, rngs={"latent": jax.random.key(3)})[0]
  np.testing.assert_allclose(a, b, atol=1e-4)
