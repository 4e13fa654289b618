"""The Separated Attribute Predictability score (Kumar et al. 2018, "Variational Inference
of Disentangled Latent Concepts from Unlabeled Observations", §3): a score S[j, k] of how
well latent dimension j alone predicts factor k, then for each factor the gap between its
two best dimensions, averaged over the factors:

  SAP = 1/K Σ_k (S[j(k), k] − max_{j ≠ j(k)} S[j, k])

For a continuous factor S is the R² of a linear regression of the factor on z_j (the
squared correlation); for a categorical one the balanced accuracy of a classifier on z_j
alone, as Kumar et al. state. The classifier is a decision tree with leaves of ≥ 20
images (a 1-D classifier that carves intervals, where disentanglement_lib's linear SVM
cannot pick out a middle class), and its balanced accuracy is adjusted for chance (0 at chance, 1
perfect; scikit-learn's ``adjusted=True``) so that both kinds of factor span [0, 1].
Fitted on the first 80% of the eval split, scored on the rest.
"""

from __future__ import annotations

import warnings

import numpy as np

from kjax.evaluation import base
from kjax.evaluation import factors as kfactors

MIN_LEAF = 20    # images per leaf: intervals of one dimension, not its noise

METRIC_DOCS = {
    "sap": "SAP score (Kumar et al. 2018) of z_mean over the factors class, style, ink, "
           "slant, width, height; 0 .. 1",
    "sap_per_factor": "the gap between the two best single dimensions for each factor",
}


def score_matrix(codes: np.ndarray, values: np.ndarray, discrete, train: int,
                 seed: int = 0) -> np.ndarray:
  """float64 ``[D, K]``: S[j, k], how well ``codes[:, j]`` alone predicts factor k.

  Args:
    codes: float ``[N, D]`` representations; values: float ``[N, K]`` factors.
    discrete: bool per factor: classification (adjusted balanced accuracy, clipped at 0)
      or regression (R², the squared Pearson correlation).
    train: rows ``[:train]`` fit the classifiers, ``[train:]`` score them.
  """
  from sklearn import metrics as skmetrics  # noqa: PLC0415  (0.7 s: only when measured)
  from sklearn import tree  # noqa: PLC0415
  codes, values = np.asarray(codes, np.float64), np.asarray(values, np.float64)
  out = np.zeros((codes.shape[1], values.shape[1]))
  for k, is_discrete in enumerate(discrete):
    y = values[:, k]
    for j in range(codes.shape[1]):
      z = codes[:, j]
      if is_discrete:
        clf = tree.DecisionTreeClassifier(min_samples_leaf=MIN_LEAF, random_state=seed)
        with warnings.catch_warnings():  # few images per class, or a class the test rows
          warnings.simplefilter("ignore", UserWarning)  # lack: scikit-learn warns, fine here
          clf.fit(z[:train, None], y[:train])
          out[j, k] = max(0.0, skmetrics.balanced_accuracy_score(
              y[train:], clf.predict(z[train:, None]), adjusted=True))
      elif np.std(z) > 0 and np.std(y) > 0:
        out[j, k] = np.corrcoef(z, y)[0, 1] ** 2
  return out


def sap_from_scores(scores: np.ndarray) -> tuple[float, np.ndarray]:
  """``(SAP, per-factor gaps [K])`` of a score matrix ``[D, K]`` (one dimension: the second
  best is 0)."""
  ranked = -np.sort(-np.asarray(scores, np.float64), axis=0)
  second = ranked[1] if len(ranked) > 1 else np.zeros(ranked.shape[1])
  gaps = ranked[0] - second
  return float(gaps.mean()), gaps


def sap(run: base.Run) -> base.Output:
  """``sap`` and ``sap_per_factor`` of the eval split's ``z_mean``."""
  codes, values, _ = kfactors.of_run(run)
  train = kfactors.split(len(codes))
  score, gaps = sap_from_scores(score_matrix(codes, values, kfactors.DISCRETE, train,
                                             run.config.seed))
  return base.Output(metrics={"sap": round(score, 6), "sap_per_factor": gaps.round(4).tolist()},
                     protocol={**kfactors.protocol(run), "sap_train_images": train})
