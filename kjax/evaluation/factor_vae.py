"""The FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising", §4): fix one
factor, take a batch of L images sharing its value, normalise their representations by
each dimension's standard deviation over the whole split, and vote for the dimension of
least variance; a majority-vote classifier from dimension to factor, fitted on training
votes, scores the accuracy on held-out votes.

On a data set rather than a simulator, "fixing a factor" is choosing L images that share
its (discretised, ``kjax.evaluation.factors``) value: an anchor image is drawn at random
(values weighted by their frequency), then L images of its value with replacement; values
held by a single image are never anchors. Dimensions whose variance over the split is
below 0.05 are left out (disentanglement_lib's pruning; a collapsed latent scores 0).
By construction the score of an uninformative representation is about the chance of the
majority vote, 1/K for K factors, not 0.
"""

from __future__ import annotations

import numpy as np

from kjax.evaluation import base
from kjax.evaluation import factors as kfactors

BATCH_SIZE = 64          # L, disentanglement_lib's default
TRAIN_VOTES = 5000
EVAL_VOTES = 2500
MIN_VARIANCE = 0.05      # disentanglement_lib's prune_dims threshold

METRIC_DOCS = {
    "factor_vae_score": "FactorVAE score (Kim & Mnih 2018): accuracy of the majority vote "
                        "from the least-varying z_mean dimension to the factor held fixed "
                        "(chance = 1/6 here)",
    "factor_vae_active_dims": "z_mean dimensions with variance >= 0.05 over the eval split",
}


def votes(codes: np.ndarray, binned: np.ndarray, num_votes: int, rng: np.random.Generator,
          batch_size: int = BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
  """``(dims int [V], factors int [V])``: ``num_votes`` votes (module docstring) of float
  ``codes [N, D]`` (the active dimensions) against int ``binned [N, K]``."""
  scale = np.std(codes, 0)
  normed = codes / np.where(scale > 0, scale, 1.0)
  groups = []
  for k in range(binned.shape[1]):
    _, inverse, counts = np.unique(binned[:, k], return_inverse=True, return_counts=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(counts))]
    anchors = np.flatnonzero(counts[inverse] >= 2)
    groups.append((inverse, members, anchors))
  factors = rng.integers(0, binned.shape[1], num_votes)
  dims = np.zeros(num_votes, np.int64)
  for v, k in enumerate(factors):
    inverse, members, anchors = groups[k]
    group = members[inverse[rng.choice(anchors)]]
    batch = normed[rng.choice(group, batch_size)]
    dims[v] = np.argmin(np.var(batch, 0, ddof=1))
  return dims, factors


def majority_vote_accuracy(train: tuple[np.ndarray, np.ndarray],
                           test: tuple[np.ndarray, np.ndarray], num_dims: int,
                           num_factors: int) -> float:
  """Kim & Mnih's classifier: each dimension predicts the factor it was voted for most
  often in ``train`` (``(dims [V], factors [V])``; ties to the lower factor, an unvoted
  dimension to factor 0); its accuracy on ``test``'s votes."""
  counts = np.zeros((num_dims, num_factors), np.int64)
  np.add.at(counts, train, 1)
  predicted = np.argmax(counts, 1)
  dims, factors = test
  return float(np.mean(predicted[dims] == factors))


def factor_vae_score(codes: np.ndarray, binned: np.ndarray, seed: int = 0
                     ) -> tuple[float, int]:
  """``(score, active dimensions)`` of float ``codes [N, D]`` against int ``binned [N, K]``
  (0 when no dimension is active)."""
  codes = np.asarray(codes, np.float64)
  active = np.var(codes, 0) >= MIN_VARIANCE
  if not active.any():
    return 0.0, 0
  rng = np.random.default_rng(seed)
  train = votes(codes[:, active], binned, TRAIN_VOTES, rng)
  test = votes(codes[:, active], binned, EVAL_VOTES, rng)
  return majority_vote_accuracy(train, test, int(active.sum()), binned.shape[1]), int(active.sum())


def factor_vae(run: base.Run) -> base.Output:
  """``factor_vae_score`` and ``factor_vae_active_dims`` of the eval split's ``z_mean``."""
  codes, _, binned = kfactors.of_run(run)
  score, active = factor_vae_score(codes, binned, run.config.seed)
  return base.Output(
      metrics={"factor_vae_score": round(score, 6), "factor_vae_active_dims": active},
      protocol={**kfactors.protocol(run), "factor_vae_batch_size": BATCH_SIZE,
                "factor_vae_votes": [TRAIN_VOTES, EVAL_VOTES]})
