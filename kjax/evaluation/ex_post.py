"""An ex-post density on a VAE's latent space (Ghosh et al. 2020, "From Variational to
Deterministic Autoencoders", §4; pythae's ``GaussianMixtureSampler``): a Gaussian mixture
fitted to the posterior means ``z_mean`` of the training images, sampled in place of the
prior N(0, I). Where the aggregate posterior leaves holes in the prior, prior samples decode
to blurs that no real image is near (recall ≈ 0); the mixture's samples stay where the
training images are. ``config.eval.sampler = 'gmm'`` uses it for every sample metric
(``kjax.evaluation.base.Run.generated``); the conditional VAE gets one mixture per class.
"""

from __future__ import annotations

import dataclasses

import numpy as np

DEFAULT_COMPONENTS = 10        # pythae's GaussianMixtureSampler default


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
  """A fitted mixture of K full-covariance Gaussians in D dimensions.

  Attributes:
    weights: float64 ``[K]``, summing to 1.
    means: float64 ``[K, D]``.
    cholesky: float64 ``[K, D, D]``, lower-triangular factors of the covariances.
  """

  weights: np.ndarray
  means: np.ndarray
  cholesky: np.ndarray

  def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
    """float32 ``[n, D]`` draws: a component by weight, then mean + L ε, ε ~ N(0, I)."""
    comps = rng.choice(len(self.weights), n, p=self.weights)
    eps = rng.standard_normal((n, self.means.shape[1]))
    return (self.means[comps] + np.einsum("nij,nj->ni", self.cholesky[comps], eps)
            ).astype(np.float32)


def fit(z: np.ndarray, num_components: int = DEFAULT_COMPONENTS, seed: int = 0
        ) -> GaussianMixture:
  """A mixture fitted by EM (scikit-learn, k-means initialisation, covariances regularised
  by 1e-6) to float ``z [N, D]``, with ``min(num_components, N)`` components.

  Raises:
    ValueError: ``z`` has fewer than 2 rows or is not finite.
  """
  z = np.asarray(z, np.float64)
  if z.ndim != 2 or len(z) < 2 or not np.all(np.isfinite(z)):
    raise ValueError(f"z of shape {z.shape} is not allowed: expected [N >= 2, D], finite")
  from sklearn import mixture  # noqa: PLC0415  (0.7 s: only when measured)
  gmm = mixture.GaussianMixture(min(num_components, len(z)), covariance_type="full",
                                random_state=seed, reg_covar=1e-6).fit(z)
  return GaussianMixture(gmm.weights_ / gmm.weights_.sum(), gmm.means_,
                         np.linalg.cholesky(gmm.covariances_))


def fit_per_class(z: np.ndarray, labels: np.ndarray, num_components: int = DEFAULT_COMPONENTS,
                  seed: int = 0) -> dict[int, GaussianMixture]:
  """One mixture per class present in int ``labels [N]`` (``fit`` of its rows of ``z``)."""
  return {int(c): fit(z[labels == c], num_components, seed) for c in np.unique(labels)}


def sample_conditional(mixtures: dict[int, GaussianMixture], labels: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
  """float32 ``[n, D]``: row i drawn from the mixture of class ``labels[i]``.

  Raises:
    ValueError: a label has no mixture (no training image of that class).
  """
  missing = sorted(set(np.unique(labels).tolist()) - set(mixtures))
  if missing:
    raise ValueError(f"classes {missing} have no training images to fit a mixture to")
  d = next(iter(mixtures.values())).means.shape[1]
  out = np.zeros((len(labels), d), np.float32)
  for c, gmm in mixtures.items():
    rows = np.flatnonzero(labels == c)
    out[rows] = gmm.sample(len(rows), rng)
  return out
