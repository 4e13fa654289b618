"""DCI: Disentanglement, Completeness and Informativeness (Eastwood & Williams 2018, "A
Framework for the Quantitative Evaluation of Disentangled Representations", §3).

One predictor per factor k from all latent dimensions gives an importance matrix R [D, K]
(R[j, k]: how much z_j matters for predicting v_k) and a test accuracy. With P_jk = R_jk /
Σ_k R_jk and P̃_jk = R_jk / Σ_j R_jk:

  D = Σ_j ρ_j (1 − H_K(P_j·)),  ρ_j = Σ_k R_jk / Σ R       (each dimension, one factor)
  C = Σ_k ρ̃_k (1 − H_D(P̃_·k)), ρ̃_k = Σ_j R_jk / Σ R       (each factor, one dimension)
  I = the predictors' mean test accuracy

(H_K: entropy in base K; these weighted forms are disentanglement_lib's). The predictors are
random forests, Eastwood & Williams's non-linear choice (disentanglement_lib's gradient
boosting took ~10 s per factor here): 100 trees on all dimensions at each split, leaves of
≥ 20 images so that fitting noise does not spread the importance. The factors are
discretised as for MIG (``kjax.evaluation.factors``); fitted on the first 80% of the eval
split, accuracy on the rest.
"""

from __future__ import annotations

import warnings

import numpy as np

from kjax.evaluation import base
from kjax.evaluation import factors as kfactors

NUM_TREES = 100
MIN_LEAF = 20

METRIC_DOCS = {
    "dci_disentanglement": "DCI disentanglement (Eastwood & Williams 2018): each latent "
                           "dimension predicts one factor; 0 .. 1",
    "dci_completeness": "DCI completeness: each factor is predicted by one dimension; 0 .. 1",
    "dci_informativeness": "DCI informativeness: mean test accuracy of predicting each "
                           "discretised factor from z_mean (random forests)",
    "dci_informativeness_per_factor": "that accuracy per factor (class, style, ink, slant, "
                                      "width, height)",
}


def _entropy(weights: np.ndarray, base: int) -> np.ndarray:
  """Entropy in ``base`` of each column of non-negative ``weights``, normalised to sum 1
  (scipy.stats.entropy's convention)."""
  p = weights / weights.sum(0, keepdims=True)
  return -np.sum(p * np.log(p), 0) / np.log(base)


def importance_matrix(codes: np.ndarray, binned: np.ndarray, train: int, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
  """``(R [D, K], accuracy [K])``: each factor's random forest's impurity importances of
  the ``D`` dimensions of float ``codes [N, D]`` and its accuracy on rows ``[train:]``
  (fitted on ``[:train]``) for int ``binned [N, K]``."""
  from sklearn import ensemble  # noqa: PLC0415  (0.7 s: only when measured)
  r = np.zeros((codes.shape[1], binned.shape[1]))
  accuracy = np.zeros(binned.shape[1])
  for k in range(binned.shape[1]):
    forest = ensemble.RandomForestClassifier(NUM_TREES, max_features=None,
                                             min_samples_leaf=MIN_LEAF, random_state=seed)
    with warnings.catch_warnings():  # "more classes than half the samples": a small split
      warnings.simplefilter("ignore", UserWarning)
      forest.fit(codes[:train], binned[:train, k])
    r[:, k] = np.abs(forest.feature_importances_)
    accuracy[k] = forest.score(codes[train:], binned[train:, k])
  return r, accuracy


def disentanglement(r: np.ndarray) -> float:
  """D of an importance matrix ``[D, K]`` (module docstring); 0 for one factor."""
  r = np.asarray(r, np.float64)
  if r.shape[1] < 2:
    return 0.0
  per_code = 1.0 - _entropy(r.T + 1e-11, r.shape[1])
  weights = r.sum(1) / r.sum() if r.sum() > 0 else np.full(len(r), 1.0 / len(r))
  return float(np.sum(per_code * weights))


def completeness(r: np.ndarray) -> float:
  """C of an importance matrix ``[D, K]`` (module docstring); 0 for one dimension."""
  r = np.asarray(r, np.float64)
  if r.shape[0] < 2:
    return 0.0
  per_factor = 1.0 - _entropy(r + 1e-11, r.shape[0])
  weights = r.sum(0) / r.sum() if r.sum() > 0 else np.full(r.shape[1], 1.0 / r.shape[1])
  return float(np.sum(per_factor * weights))


def dci(run: base.Run) -> base.Output:
  """``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness`` (and per
  factor) of the eval split's ``z_mean``."""
  codes, _, binned = kfactors.of_run(run)
  train = kfactors.split(len(codes))
  r, accuracy = importance_matrix(codes, binned, train, run.config.seed)
  return base.Output(
      metrics={"dci_disentanglement": round(disentanglement(r), 6),
               "dci_completeness": round(completeness(r), 6),
               "dci_informativeness": round(float(accuracy.mean()), 6),
               "dci_informativeness_per_factor": accuracy.round(4).tolist()},
      protocol={**kfactors.protocol(run), "dci_train_images": train,
                "dci_predictor": f"random forest, {NUM_TREES} trees, leaves >= {MIN_LEAF}"})
