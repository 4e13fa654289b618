"""Quantitative metrics of generative models (issue 4), as pure functions of arrays.

* ``iwae_log_likelihood``: the importance-weighted bound on log p(x) (Burda et al. 2015).
* ``kl_per_dimension`` and ``active_units``: latent usage (Burda et al. 2015 §5.2).
* ``frechet_distance`` and ``kernel_inception_distance``: distances between two sets of
  features (Heusel et al. 2017; Bińkowski et al. 2018), in whatever feature space the caller
  chooses (kjax: a classifier's penultimate layer).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from kjax import errors


def iwae_log_likelihood(z_mean: jax.Array, z_logvar: jax.Array,
                        log_px_given_z: Callable[[jax.Array], jax.Array], key: jax.Array,
                        num_samples: int, chunk_size: int = 100) -> jax.Array:
  """The IWAE bound ``log (1/k) Σ_i p(x, z_i) / q(z_i | x)``, ``z_i ~ q(z | x)``, in nats.

  Burda et al. 2015, Eq. 8. It is ≤ log p(x), equals the ELBO in expectation for k = 1, is
  non-decreasing in k in expectation, and is exact for every k when q is the true
  posterior. The k samples are drawn in chunks of ``chunk_size`` and folded into a
  running log-sum-exp, so memory stays bounded for k = 5000.

  Args:
    z_mean, z_logvar: float ``[B, D]``, the diagonal Gaussian q(z | x) of each example.
    log_px_given_z: float ``[S, B, D]`` samples → float ``[S, B]`` log-likelihoods
      log p(x_b | z_sb) in nats (the decoder, bound to the batch's x and labels).
    key: PRNG key of the samples.
    num_samples: k ≥ 1; chunk_size: samples per chunk (the last one may be smaller).

  Returns:
    float ``[B]``, the bound on log p(x) per example (negate it for the NLL in nats).

  Raises:
    ConfigError: ``num_samples`` or ``chunk_size`` < 1.
  """
  if num_samples < 1 or chunk_size < 1:
    raise errors.ConfigError(f"num_samples={num_samples}, chunk_size={chunk_size} are not "
                             "allowed: expected integers >= 1")
  std = jnp.exp(0.5 * z_logvar)
  log_2pi = math.log(2 * math.pi)

  def log_weights(eps):  # eps [S, B, D] → log p(x, z) − log q(z | x), [S, B]
    z = z_mean + std * eps
    log_prior = -0.5 * jnp.sum(jnp.square(z) + log_2pi, axis=-1)
    log_q = -0.5 * jnp.sum(jnp.square(eps) + log_2pi + z_logvar, axis=-1)
    return log_px_given_z(z) + log_prior - log_q

  def chunk_logsumexp(start, size):  # log Σ over samples start..start+size−1, [B]
    eps = jax.random.normal(jax.random.fold_in(key, start), (size, *z_mean.shape), z_mean.dtype)
    return jax.nn.logsumexp(log_weights(eps), axis=0)

  num_full, rest = divmod(num_samples, chunk_size)
  # A scan over the full chunks: one traced decoder call, whatever k is.
  total = jax.lax.scan(
      lambda acc, i: (jnp.logaddexp(acc, chunk_logsumexp(i * chunk_size, chunk_size)), None),
      jnp.full(z_mean.shape[:1], -jnp.inf, z_mean.dtype), jnp.arange(num_full))[0]
  if rest:
    total = jnp.logaddexp(total, chunk_logsumexp(num_full * chunk_size, rest))
  return total - math.log(num_samples)


def kl_per_dimension(z_mean: np.ndarray, z_logvar: np.ndarray) -> np.ndarray:
  """Mean over examples of KL(q(z_d | x) ‖ N(0, 1)) for each dimension d, nats.

  Args:
    z_mean, z_logvar: float ``[N, D]``.

  Returns:
    float64 ``[D]``; its sum is the mean closed-form KL term of the ELBO.
  """
  z_mean, z_logvar = np.asarray(z_mean, np.float64), np.asarray(z_logvar, np.float64)
  return 0.5 * np.mean(np.exp(z_logvar) + np.square(z_mean) - 1.0 - z_logvar, axis=0)


def active_units(z_mean: np.ndarray, threshold: float = 0.01) -> tuple[int, np.ndarray]:
  """Active latent units: ``A_u = Cov_x(E_q[z_u | x]) > threshold`` (Burda et al. 2015 §5.2).

  Args:
    z_mean: float ``[N, D]``, the posterior means E_q[z | x] of N examples.
    threshold: 0.01 in Burda et al.

  Returns:
    ``(count, activity)``: the number of active units and float64 ``[D]`` variances.
  """
  activity = np.var(np.asarray(z_mean, np.float64), axis=0)
  return int(np.sum(activity > threshold)), activity


def _stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  f = np.asarray(features, np.float64)
  return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh((a + a.T) / 2)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to two feature sets (FID's formula).

  ``‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a^½ Σ_b Σ_a^½)^½)`` (Heusel et al. 2017, Eq. 6;
  ``tr (Σ_a Σ_b)^½`` computed through the symmetric form, which has the same trace).

  Args:
    features_a, features_b: float ``[N_a, F]`` and ``[N_b, F]``, N ≥ 2 each.

  Returns:
    The distance (≥ 0; 0 for identical sets up to rounding), in squared feature units.

  Raises:
    DataError: fewer than 2 examples in a set, or different feature sizes.
  """
  a, b = np.asarray(features_a), np.asarray(features_b)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
    raise errors.DataError(f"feature sets of shapes {a.shape} and {b.shape} are not allowed: "
                           "expected [N, F] and [M, F] with N, M >= 2")
  mu_a, cov_a = _stats(a)
  mu_b, cov_b = _stats(b)
  root_a = _sqrt_psd(cov_a)
  cross = np.trace(_sqrt_psd(root_a @ cov_b @ root_a))
  value = np.sum(np.square(mu_a - mu_b)) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
  return float(max(value, 0.0))


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, *,
                              num_subsets: int = 10, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
  """KID: the unbiased MMD² with the cubic polynomial kernel ``(x·y / F + 1)³``, averaged
  over random subsets (Bińkowski et al. 2018, §3 and App. D).

  Args:
    features_a, features_b: float ``[N_a, F]`` and ``[N_b, F]``.
    num_subsets: subsets drawn (without replacement within each).
    subset_size: examples per subset, capped at ``min(N_a, N_b)``; ≥ 2.
    seed: of the subset draws (numpy), so that the value is reproducible.

  Returns:
    ``(mean, standard deviation)`` of MMD² over the subsets; the mean is unbiased, so it
    can be slightly negative for sets from one distribution.

  Raises:
    DataError: fewer than 2 examples, or different feature sizes.
  """
  a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
    raise errors.DataError(f"feature sets of shapes {a.shape} and {b.shape} are not allowed: "
                           "expected [N, F] and [M, F] with N, M >= 2")
  m = min(subset_size, len(a), len(b))
  rng = np.random.default_rng(seed)
  dim = a.shape[1]
  kernel = lambda x, y: (x @ y.T / dim + 1.0) ** 3  # noqa: E731
  values = []
  for _ in range(num_subsets):
    x = a[rng.choice(len(a), m, replace=False)]
    y = b[rng.choice(len(b), m, replace=False)]
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
           + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    values.append(mmd)
  return float(np.mean(values)), float(np.std(values))


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Euclidean distances float64 ``[N_a, N_b]`` between the rows of ``a`` ``[N_a, F]`` and
  ``b`` ``[N_b, F]`` (``‖x‖² + ‖y‖² − 2 x·y``, clipped at 0 before the square root)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  sq = (np.square(a).sum(1)[:, None] + np.square(b).sum(1)[None, :] - 2.0 * a @ b.T)
  return np.sqrt(np.clip(sq, 0.0, None))


def _blocks(n: int, block: int):
  return [slice(i, min(i + block, n)) for i in range(0, n, block)]


def kth_neighbour_radii(features: np.ndarray, k: int, block: int = 1000) -> np.ndarray:
  """Distance float64 ``[N]`` from each row of ``features`` ``[N, F]`` to its k-th nearest
  other row (the radius of its k-NN ball; Kynkäänniemi et al. 2019, §2)."""
  f = np.asarray(features, np.float64)
  out = np.empty(len(f))
  for s in _blocks(len(f), block):
    d = pairwise_distances(f[s], f)
    out[s] = np.partition(d, k, axis=1)[:, k]  # index 0 is the row itself (distance 0)
  return out


def precision_recall_density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5,
                                      block: int = 1000) -> dict[str, float]:
  """Precision and recall of k-NN manifolds (Kynkäänniemi et al. 2019, Eqs. 1–2) and
  density and coverage (Naeem et al. 2020, Eqs. 3–4), in a feature space.

  * precision: share of fake samples inside the k-NN ball of some real sample;
  * recall: share of real samples inside the k-NN ball of some fake sample;
  * density: mean number of real k-NN balls holding a fake sample, divided by k (≈ 1 for
    two samples of one distribution; above 1 where fakes crowd dense real regions);
  * coverage: share of real samples whose k-NN ball holds at least one fake sample.

  Balls are open (``d < radius``) as in the reference implementation (the ``prdc``
  package); distances are Euclidean, float64, computed in blocks of ``block`` rows.

  Args:
    real, fake: float ``[N, F]`` and ``[M, F]`` features, N, M > k.
    k: neighbours of the balls (5 in both papers).

  Returns:
    ``{'precision', 'recall', 'density', 'coverage'}``, each in [0, 1] except density,
    in [0, N / k].

  Raises:
    DataError: different feature sizes, or a set with k or fewer samples.
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  if (real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]
      or min(len(real), len(fake)) <= k or k < 1):
    raise errors.DataError(f"feature sets of shapes {real.shape} and {fake.shape} with k={k} "
                           "are not allowed: expected [N, F] and [M, F] with N, M > k >= 1")
  real_r, fake_r = kth_neighbour_radii(real, k, block), kth_neighbour_radii(fake, k, block)
  inside_real = np.zeros(len(fake), np.int64)   # real balls holding each fake sample
  real_covered = np.zeros(len(real), bool)      # real ball holding some fake sample
  real_recalled = np.zeros(len(real), bool)     # real sample in some fake ball
  for s in _blocks(len(real), block):
    d = pairwise_distances(real[s], fake)       # [block, M]
    in_real_ball = d < real_r[s, None]
    inside_real += in_real_ball.sum(0)
    real_covered[s] = in_real_ball.any(1)
    real_recalled[s] = (d < fake_r[None, :]).any(1)
  return {"precision": float(np.mean(inside_real > 0)), "recall": float(real_recalled.mean()),
          "density": float(inside_real.mean() / k), "coverage": float(real_covered.mean())}


def nearest_neighbours(queries: np.ndarray, reference: np.ndarray, block: int = 1000
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Each query row's nearest reference row: ``(distances float64 [N], indices int [N])``.

  Args:
    queries: float ``[N, F]``; reference: float ``[M, F]`` (e.g. flattened pixels or
      features of the training images).
  """
  q, r = np.asarray(queries, np.float64), np.asarray(reference, np.float64)
  dist, index = np.empty(len(q)), np.empty(len(q), np.int64)
  for s in _blocks(len(q), block):
    d = pairwise_distances(q[s], r)
    index[s] = np.argmin(d, 1)
    dist[s] = d[np.arange(len(d)), index[s]]
  return dist, index
