"""Metrics against oracles: exact IWAE on a tractable model, bounds, latent usage, FD, KID."""

import math
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cvae as cvae_config
from kjax import errors, metrics, objectives, tasks

S2 = 0.5  # observation variance of the tractable model p(z) = N(0, 1), p(x | z) = N(z, S2)


def _log_px_given_z(x):
  return lambda z: -0.5 * ((x[None, :] - z[..., 0]) ** 2 / S2 + math.log(2 * math.pi * S2))


def _exact_log_px(x):
  return -0.5 * (x ** 2 / (1 + S2) + np.log(2 * np.pi * (1 + S2)))


def test_iwae_is_exact_with_the_true_posterior():
  x = jnp.linspace(-2.0, 2.0, 9)
  z_mean = (x / (1 + S2))[:, None]
  z_logvar = jnp.full_like(z_mean, math.log(S2 / (1 + S2)))
  for k in (1, 50):
    bound = metrics.iwae_log_likelihood(z_mean, z_logvar, _log_px_given_z(x),
                                        jax.random.key(0), k, chunk_size=16)
    np.testing.assert_allclose(bound, _exact_log_px(np.asarray(x)), atol=1e-4)


def test_iwae_bound_rises_with_k_towards_log_px():
  """With q = the prior (a poor posterior), the bound is ≤ log p(x), above the ELBO and
  non-decreasing in k (averaged over 400 examples)."""
  x = jax.random.normal(jax.random.key(1), (400,)) * math.sqrt(1 + S2)
  z_mean, z_logvar = jnp.zeros((400, 1)), jnp.zeros((400, 1))
  exact = _exact_log_px(np.asarray(x)).mean()
  # The ELBO in closed form: E_q log p(x|z) − KL(q ‖ p) with q = p: −½ (x² + 1)/S2 − ½ log 2πS2.
  elbo = float(np.mean(-0.5 * ((np.asarray(x) ** 2 + 1) / S2 + np.log(2 * np.pi * S2))))
  bounds = [float(metrics.iwae_log_likelihood(z_mean, z_logvar, _log_px_given_z(x),
                                              jax.random.key(2), k, chunk_size=64).mean())
            for k in (1, 10, 100, 1000)]
  assert abs(bounds[0] - elbo) < 0.15  # k = 1 is an unbiased estimate of the ELBO
  assert all(b2 >= b1 - 0.02 for b1, b2 in zip(bounds, bounds[1:])), bounds
  assert bounds[-1] <= exact + 0.02 and bounds[-1] - elbo > 0.3
  with pytest.raises(errors.ConfigError, match="num_samples=0"):
    metrics.iwae_log_likelihood(z_mean, z_logvar, _log_px_given_z(x), jax.random.key(0), 0)


def test_active_units_and_kl_per_dimension_on_a_constructed_encoder():
  rng = np.random.default_rng(0)
  z_mean = np.stack([rng.normal(size=1000),            # varies with x: active
                     0.05 * rng.normal(size=1000),     # variance 0.0025 < 0.01: inactive
                     np.full(1000, 0.3)], axis=1)      # constant: inactive
  count, activity = metrics.active_units(z_mean)
  assert count == 1 and activity[0] > 0.9 and activity[2] < 1e-20
  z_logvar = np.zeros_like(z_mean)
  kl = metrics.kl_per_dimension(z_mean, z_logvar)
  np.testing.assert_allclose(kl, 0.5 * np.mean(z_mean ** 2, axis=0))
  assert metrics.kl_per_dimension(np.zeros((5, 2)), np.zeros((5, 2))).tolist() == [0.0, 0.0]


def test_frechet_distance_oracles():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
  assert metrics.frechet_distance(a, a) < 1e-6
  shift = np.full(8, 0.5)
  np.testing.assert_allclose(metrics.frechet_distance(a, a + shift), np.sum(shift ** 2),
                             rtol=1e-6)
  assert metrics.frechet_distance(a, a + 2 * shift) > metrics.frechet_distance(a, a + shift)
  # 1-D Gaussians: (μ1 − μ2)² + (σ1 − σ2)² with the sample statistics.
  u, v = rng.normal(1.0, 2.0, size=(5000, 1)), rng.normal(-1.0, 0.5, size=(5000, 1))
  expected = (u.mean() - v.mean()) ** 2 + (u.std(ddof=1) - v.std(ddof=1)) ** 2
  np.testing.assert_allclose(metrics.frechet_distance(u, v), expected, rtol=1e-6)
  with pytest.raises(errors.DataError, match=r"shapes \(2000, 8\) and \(3, 4\)"):
    metrics.frechet_distance(a, np.zeros((3, 4)))


def test_kernel_inception_distance_oracles():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
  same, _ = metrics.kernel_inception_distance(a, b, num_subsets=5, subset_size=500)
  shifted, _ = metrics.kernel_inception_distance(a, b + 0.5, num_subsets=5, subset_size=500)
  assert abs(same) < 0.01 and shifted > 0.05
  assert metrics.kernel_inception_distance(a, b + 0.5, num_subsets=5, subset_size=500)[0] == shifted


@pytest.mark.parametrize("model", ["beta_vae", "cvae"])
def test_iwae_bound_of_a_vae_task(model, tiny_config):
  """On a (briefly trained) VAE: k = 1 estimates the ELBO; k = 64 is above it."""
  config = tiny_config if model == "beta_vae" else cvae_config.get_config()
  config.data.name = "kmnist"
  config.objective.beta = 1.0
  task = tasks.get_task(config, None)
  state = task.init_state(jax.random.key(0))
  k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
  batch = {"images": jax.random.randint(k1, (64, 28, 28, 1), 0, 256).astype(jnp.uint8) // 4,
           "labels": jax.random.randint(k2, (64,), 0, 10),
           "styles": jax.random.randint(k3, (64,), 0, 2)}
  step = jax.jit(task.train_step)
  for s in range(20):
    state, _ = step(state, batch, jax.random.key(s))
  eval_sums = jax.jit(task.eval_sums)
  nelbo = np.mean([float(eval_sums(state, batch, jnp.ones(64, bool), jax.random.key(s))
                         ["nelbo"]) / 64 for s in range(8)])
  bound = jax.jit(task.log_likelihood_bound, static_argnums=(3, 4))
  k1_mean = np.mean([float(bound(state, batch, jax.random.key(s), 1, 1).mean()) for s in range(8)])
  k64_mean = float(bound(state, batch, jax.random.key(9), 64, 16).mean())
  assert abs(k1_mean + nelbo) < 0.01 * nelbo
  assert k64_mean > k1_mean


@pytest.mark.parametrize("model", ["beta_vae", "cvae"])
def test_iwae_bound_is_unchanged_by_the_fast_bernoulli_nll(model, tiny_config):
  """Issue 27: ``objectives.bernoulli_nll`` on one pixel axis with its own softplus (3.7×
  faster IWAE bound on XLA:CPU) gives the bound of the formula it replaced,
  ``jax.nn.softplus(l) − x·l`` summed over ``[..., H, W, 1]``, on fixed keys, to float32
  round-off."""
  config = tiny_config if model == "beta_vae" else cvae_config.get_config()
  config.data.name = "kmnist"
  task = tasks.get_task(config, None)
  state = task.init_state(jax.random.key(0))
  k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
  batch = {"images": jax.random.randint(k1, (12, 28, 28, 1), 0, 256).astype(jnp.uint8),
           "labels": jax.random.randint(k2, (12,), 0, 10),
           "styles": jax.random.randint(k3, (12,), 0, 2)}
  bound = jax.jit(task.log_likelihood_bound, static_argnums=(3, 4))
  new = bound(state, batch, jax.random.key(2), 50, 20)

  def before(logits, x):  # kjax's bernoulli_nll up to issue 27
    per_pixel = jax.nn.softplus(logits) - x * logits
    return per_pixel.reshape(*per_pixel.shape[:-3], -1).sum(-1)

  with mock.patch.object(objectives, "bernoulli_nll", before):
    old = jax.jit(task.log_likelihood_bound, static_argnums=(3, 4))(
        state, batch, jax.random.key(2), 50, 20)
  np.testing.assert_allclose(np.asarray(new), np.asarray(old), rtol=2e-6)
  assert not np.array_equal(np.asarray(new), np.asarray(bound(state, batch, jax.random.key(3),
                                                                50, 20)))
