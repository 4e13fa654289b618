"""Closed-form checks of the VAE objectives."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from kjax import objectives


def test_kl_closed_form_values():
  # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension: 10 dims -> 5 nats.
  assert np.isclose(objectives.kl_standard_normal(jnp.ones(10), jnp.zeros(10)), 5.0)
  assert np.isclose(objectives.kl_standard_normal(jnp.zeros(3), jnp.zeros(3)), 0.0)
  # KL(N(0, e^2) || N(0, 1)) = 1/2 (e^2 - 1 - 2) per dimension.
  assert np.isclose(objectives.kl_standard_normal(jnp.zeros(1), jnp.full(1, 2.0)),
                    0.5 * (math.exp(2.0) - 3.0), rtol=1e-6)


def test_kl_matches_monte_carlo():
  mean, logvar = jnp.array([0.5, -1.0]), jnp.array([-0.5, 0.3])
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.key(0), (200_000, 2))
  log_q = jax.scipy.stats.norm.logpdf(z, mean, jnp.exp(0.5 * logvar)).sum(-1)
  log_p = jax.scipy.stats.norm.logpdf(z).sum(-1)
  assert np.isclose(objectives.kl_standard_normal(mean, logvar), (log_q - log_p).mean(), atol=0.01)


def test_bernoulli_nll_is_binary_cross_entropy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 28, 28, 1)).astype(np.float32)
  x = rng.uniform(size=(3, 28, 28, 1)).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(3, -1).sum(1)
  got = objectives.bernoulli_nll(jnp.asarray(logits), jnp.asarray(x))
  assert got.shape == (3,)
  np.testing.assert_allclose(got, bce, rtol=1e-5)


def test_bernoulli_nll_is_stable_for_extreme_logits():
  logits = jnp.full((1, 28, 28, 1), 100.0)
  assert np.isclose(objectives.bernoulli_nll(logits, jnp.ones_like(logits))[0], 0.0, atol=1e-3)
  assert np.isclose(objectives.bernoulli_nll(logits, jnp.zeros_like(logits))[0], 784 * 100.0)


def test_gaussian_nll_is_a_normal_log_density():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 28, 28, 1)).astype(np.float32)
  x = rng.uniform(size=(2, 28, 28, 1)).astype(np.float32)
  mean = 1 / (1 + np.exp(-logits))
  expected = -jax.scipy.stats.norm.logpdf(x, mean, math.sqrt(0.3)).reshape(2, -1).sum(1)
  np.testing.assert_allclose(objectives.gaussian_nll(logits, x, 0.3), expected, rtol=1e-5)


def test_beta_vae_terms():
  rng = np.random.default_rng(2)
  logits = jnp.asarray(rng.normal(size=(4, 28, 28, 1)), jnp.float32)
  x = jnp.asarray(rng.uniform(size=(4, 28, 28, 1)), jnp.float32)
  z_mean = jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)
  z_logvar = jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)
  t = objectives.beta_vae_terms(logits, x, z_mean, z_logvar, 4.0)
  assert all(v.shape == (4,) for v in t.values())
  np.testing.assert_allclose(t["loss"], t["rec"] + 4.0 * t["kl"], rtol=1e-6)
  np.testing.assert_allclose(t["nelbo"], t["rec"] + t["kl"], rtol=1e-6)
