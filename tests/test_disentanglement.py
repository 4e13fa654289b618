"""Disentanglement scores (issue 28): MIG, DCI, SAP and the FactorVAE score against oracles
(latents that copy the factors, random latents) and small cases computed by hand from the
papers' formulas; the stroke factors measured from drawn images."""

import math
import os

import numpy as np
import pytest

from kjax import results
from kjax.evaluation import dci, factor_vae, factors, mig, sap

N = 1000


@pytest.fixture(scope="module")
def synthetic_factors():
  """Independent factors in ``factors.FACTORS``' order and kinds: class (10), style (2),
  and four continuous ones."""
  rng = np.random.default_rng(0)
  values = np.stack([rng.integers(0, 10, N), rng.integers(0, 2, N), rng.uniform(size=N),
                     rng.normal(size=N), rng.integers(5, 20, N), rng.integers(5, 20, N)],
                    1).astype(np.float64)
  copied = (values - values.mean(0)) / values.std(0)
  return values, factors.discretize_factors(values), copied, rng.normal(size=(N, 8))


def _scores(codes, values, binned):
  train = factors.split(len(codes))
  r, accuracy = dci.importance_matrix(codes, binned, train)
  return {"mig": mig.mutual_information_gap(codes, binned)[0],
          "dci_disentanglement": dci.disentanglement(r), "dci_completeness": dci.completeness(r),
          "dci_informativeness": float(accuracy.mean()),
          "sap": sap.sap_from_scores(sap.score_matrix(codes, values, factors.DISCRETE, train))[0],
          "factor_vae_score": factor_vae.factor_vae_score(codes, binned)[0]}


def test_latents_that_copy_the_factors_score_about_one(synthetic_factors):
  values, binned, copied, _ = synthetic_factors
  scores = _scores(copied, values, binned)
  assert all(v > 0.95 for v in scores.values()), scores


def test_random_latents_score_about_zero(synthetic_factors):
  values, binned, _, noise = synthetic_factors
  scores = _scores(noise, values, binned)
  for name in ("mig", "dci_disentanglement", "dci_completeness", "sap"):
    assert scores[name] < 0.05, (name, scores)
  # The FactorVAE score's floor is the majority vote's chance, 1/K (Kim & Mnih 2018).
  assert scores["factor_vae_score"] == pytest.approx(1 / 6, abs=0.05)


def test_a_collapsed_latent_has_no_active_dimension_for_the_factor_vae_score(synthetic_factors):
  _, binned, _, _ = synthetic_factors
  assert factor_vae.factor_vae_score(np.zeros((N, 4)), binned) == (0.0, 0)


def test_mig_of_a_small_case_by_hand():
  # v = (0, 0, 1, 1); z0 copies it (I = H(v) = ln 2); z1 = (0, 0, 0, 1):
  # I(z1; v) = ln 2 − 3/4 · H(2/3, 1/3). MIG = (ln 2 − I(z1; v)) / ln 2.
  codes = np.array([[0., 0.], [0., 0.], [1., 0.], [1., 1.]])
  v = np.array([[0], [0], [1], [1]])
  h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
  i1 = math.log(2) - 0.75 * h
  score, gaps = mig.mutual_information_gap(codes, v)
  assert score == pytest.approx((math.log(2) - i1) / math.log(2), abs=1e-9)  # 0.6887
  assert gaps.shape == (1,)


def test_dci_of_an_importance_matrix_by_hand():
  # R = [[3, 1], [0, 2]]: z0 spreads 3:1 (1 − H₂(3/4, 1/4) = 0.1887), z1 is pure (1);
  # D = 4/6 · 0.1887 + 2/6 · 1. Factor 0 is pure (1), factor 1 spreads 1:2 (1 − H₂(1/3, 2/3));
  # C = 3/6 · 1 + 3/6 · 0.0817.
  r = np.array([[3.0, 1.0], [0.0, 2.0]])

  def h2(p):
    return -sum(x * math.log2(x) for x in p if x > 0)

  assert dci.disentanglement(r) == pytest.approx(
      4 / 6 * (1 - h2((0.75, 0.25))) + 2 / 6, abs=1e-6)
  assert dci.completeness(r) == pytest.approx(0.5 + 0.5 * (1 - h2((1 / 3, 2 / 3))), abs=1e-6)
  assert dci.disentanglement(np.eye(3)) == pytest.approx(1.0, abs=1e-6)
  assert dci.disentanglement(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-6)


def test_sap_of_a_score_matrix_by_hand():
  scores = np.array([[0.9, 0.1], [0.5, 0.2], [0.1, 0.7]])
  value, gaps = sap.sap_from_scores(scores)
  np.testing.assert_allclose(gaps, [0.4, 0.5])
  assert value == pytest.approx(0.45)
  # R² of a continuous factor is the squared correlation: z = v + noise of equal variance.
  rng = np.random.default_rng(1)
  v = rng.normal(size=(4000, 1))
  s = sap.score_matrix(v + rng.normal(size=v.shape), v, (False,), 3000)
  assert s[0, 0] == pytest.approx(0.5, abs=0.03)


def test_the_majority_vote_classifier_by_hand():
  # Dimension 0 is voted for factor 1 twice and factor 0 once → predicts 1; dimension 1
  # → factor 0; the held-out votes (0, 1), (1, 0), (1, 1) → 2 of 3 right.
  train = (np.array([0, 0, 0, 1]), np.array([1, 1, 0, 0]))
  test = (np.array([0, 1, 1]), np.array([1, 0, 1]))
  assert factor_vae.majority_vote_accuracy(train, test, 2, 2) == pytest.approx(2 / 3)


def test_stroke_factors_of_drawn_images():
  images = np.zeros((4, 28, 28, 1), np.uint8)
  images[0, 4:24, 10:13] = 255                     # upright bar: 3 wide, 20 high
  for r in range(4, 24):                            # top leans right: column falls with row
    images[1, r, 20 - (r - 4) // 2] = 255
  images[2, 10:12, 5:25] = 200                      # a horizontal stroke, fainter
  ink, slant, width, height = factors.stroke_factors(images).T
  assert ink[0] == pytest.approx(3 * 20 / 784) and ink[3] == 0
  assert (width[0], height[0]) == (3, 20) and (width[2], height[2]) == (20, 2)
  assert (width[3], height[3], slant[3]) == (0, 0, 0)
  assert slant[0] == pytest.approx(0.0, abs=1e-12)
  assert slant[1] == pytest.approx(0.5, abs=0.03)   # one column per two rows
  with pytest.raises(ValueError, match="uint8"):
    factors.stroke_factors(images.astype(np.float32))


def test_histogram_discretize_follows_disentanglement_lib():
  x = np.array([[0.0], [0.49], [0.51], [1.0]])
  np.testing.assert_array_equal(factors.histogram_discretize(x, 2)[:, 0], [1, 1, 2, 2])
  binned = factors.discretize_factors(np.array([[3.0, 0.1], [7.0, 0.9]]), (True, False), 4)
  np.testing.assert_array_equal(binned, [[3, 1], [7, 4]])


def test_a_beta_study_draws_each_score_against_beta(tmp_path):
  runs = [{"name": f"b{beta}s{seed}", "settings": {"objective.beta": beta, "seed": seed},
           "metrics": {"eval/mig": 0.1 * beta + 0.01 * seed, "eval/sap": 0.05 * beta,
                       "eval/nelbo": 100.0}}
          for beta in (1.0, 4.0) for seed in (0, 1)]
  keys, _, rows = results.table(runs)
  path = str(tmp_path / "disentanglement_vs_beta.png")
  assert results.plot_metric_vs_setting(path, rows, "objective.beta", keys,
                                        results.DISENTANGLEMENT, "Disentanglement") == path
  assert os.path.getsize(path) > 0
  # A study without the scores (a GAN's) draws none.
  for row in rows:
    row["stats"] = {"eval/nelbo": row["stats"]["eval/nelbo"]}
  assert results.plot_metric_vs_setting(str(tmp_path / "none.png"), rows, "objective.beta",
                                        keys, results.DISENTANGLEMENT) is None
