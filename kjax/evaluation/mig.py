"""The Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in
VAEs", Eq. 6): for each factor v_k, the gap between the two latent dimensions with the most
mutual information about it, as a share of its entropy, averaged over the factors:

  MIG = 1/K Σ_k (I(z_{j(k)}; v_k) − max_{j ≠ j(k)} I(z_j; v_k)) / H(v_k),  j(k) = argmax_j I(z_j; v_k)

estimated as disentanglement_lib does: ``z_mean`` and the continuous factors discretised
into 20 equal-width bins, plug-in mutual information (``kjax.evaluation.factors``).
"""

from __future__ import annotations

import numpy as np

from kjax.evaluation import base
from kjax.evaluation import factors as kfactors

METRIC_DOCS = {
    "mig": "Mutual Information Gap (Chen et al. 2018) of z_mean over the factors "
           "class, style, ink, slant, width, height; 0 (entangled) .. 1",
    "mig_per_factor": "the normalised gap of each factor, in that order",
}


def mutual_information_gap(codes: np.ndarray, binned: np.ndarray,
                           num_bins: int = kfactors.NUM_BINS) -> tuple[float, np.ndarray]:
  """MIG of a representation.

  Args:
    codes: float ``[N, D]`` representations (discretised here into ``num_bins`` bins).
    binned: int ``[N, K]`` discretised factors (``factors.discretize_factors``).

  Returns:
    ``(mig, per_factor)``: float in [0, 1] and float64 ``[K]``. With one latent dimension the
    second-best information is 0; a constant factor (H = 0) scores 0.
  """
  mi = kfactors.mutual_information(kfactors.histogram_discretize(codes, num_bins), binned)
  ranked = -np.sort(-mi, axis=0)
  second = ranked[1] if len(ranked) > 1 else np.zeros(mi.shape[1])
  h = kfactors.entropy(binned)
  gaps = np.where(h > 0, (ranked[0] - second) / np.where(h > 0, h, 1.0), 0.0)
  return float(gaps.mean()), gaps


def mig(run: base.Run) -> base.Output:
  """``mig`` and ``mig_per_factor`` of the eval split's ``z_mean``."""
  codes, _, binned = kfactors.of_run(run)
  score, gaps = mutual_information_gap(codes, binned)
  return base.Output(metrics={"mig": round(score, 6), "mig_per_factor": gaps.round(4).tolist()},
                     protocol=kfactors.protocol(run))
