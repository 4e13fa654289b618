"""The ex-post Gaussian-mixture sampler (issue 28, Ghosh et al. 2020): the mixture fitted to
known latents, its draws, one per class, and ``eval.sampler='gmm'`` on a trained run with
the prior's metrics beside the mixture's."""

import json
import os

import numpy as np
import pytest

from kjax import errors, validation
from kjax.evaluation import ex_post, sample_quality
from tests.conftest import copy_run, evaluate_with


def test_the_mixture_of_two_separated_clusters_is_recovered_and_sampled():
  rng = np.random.default_rng(0)
  z = np.concatenate([rng.normal([-4.0, 0.0], 0.5, (3000, 2)),
                      rng.normal([4.0, 2.0], [1.0, 0.25], (1000, 2))])
  gmm = ex_post.fit(z, num_components=2, seed=0)
  order = np.argsort(gmm.means[:, 0])
  np.testing.assert_allclose(gmm.weights[order], [0.75, 0.25], atol=0.01)
  np.testing.assert_allclose(gmm.means[order], [[-4, 0], [4, 2]], atol=0.05)
  draws = gmm.sample(20000, np.random.default_rng(1))
  assert draws.dtype == np.float32 and draws.shape == (20000, 2)
  right = draws[draws[:, 0] > 0]
  assert len(right) / len(draws) == pytest.approx(0.25, abs=0.01)
  np.testing.assert_allclose(right.std(0), [1.0, 0.25], rtol=0.05)
  # No draw from the prior's hole between the clusters.
  assert np.mean(np.abs(draws[:, 0]) < 1.0) < 0.01


def test_one_mixture_per_class_and_a_missing_class_is_named():
  rng = np.random.default_rng(0)
  labels = np.repeat([0, 1], 500)
  z = rng.normal(size=(1000, 3)) + 10.0 * labels[:, None]
  mixtures = ex_post.fit_per_class(z, labels, num_components=3)
  assert sorted(mixtures) == [0, 1]
  draws = ex_post.sample_conditional(mixtures, np.array([1, 0, 1, 1]), rng)
  np.testing.assert_array_equal(draws[:, 0] > 5, [True, False, True, True])
  with pytest.raises(ValueError, match=r"classes \[7\]"):
    ex_post.sample_conditional(mixtures, np.array([0, 7]), rng)
  with pytest.raises(ValueError, match="not allowed"):
    ex_post.fit(np.array([[np.nan, 0.0], [1.0, 1.0]]))


def test_a_bad_sampler_is_refused_in_one_line(tiny_config):
  tiny_config.eval.sampler = "flow"
  with pytest.raises(errors.ConfigError, match=r"eval.sampler='flow'.*'prior'.*'gmm'"):
    validation.validate_config(tiny_config)


def test_gmm_sampler_reports_the_priors_metrics_beside_its_own(tiny_run, tmp_path):
  config, source = tiny_run
  with open(os.path.join(source, "eval", "metrics.json")) as f:
    prior = json.load(f)
  assert prior["protocol"]["sampler"].startswith("prior")
  assert not any(name.endswith("_prior") for name in prior["metrics"])

  workdir = copy_run(source, str(tmp_path / "run"))
  config = config.copy_and_resolve_references()
  # iwae_samples=2: the likelihood is not compared here, only the sample metrics are.
  gmm = evaluate_with(config, workdir, sampler="gmm", gmm_components=3, iwae_samples=2)
  metrics = gmm["metrics"]
  assert gmm["protocol"]["sampler"].startswith("gmm") and "3 full-covariance" in (
      gmm["protocol"]["sampler"])
  assert gmm["inputs"]["config"]["eval.sampler"] == "gmm"
  # The *_prior metrics are the prior evaluation's own numbers, bit for bit (same key).
  for name in sample_quality.PRIOR_COMPARISON:
    if name in prior["metrics"]:
      assert metrics[f"{name}_prior"] == prior["metrics"][name], name
  assert metrics["fd"] != prior["metrics"]["fd"]  # the mixture's samples are others
  assert 0 <= metrics["recall"] <= 1 and 0 <= metrics["coverage"] <= 1


def test_gmm_sampler_is_refused_for_a_family_without_an_encoder():
  from configs import cgan as cgan_config  # noqa: PLC0415
  config = cgan_config.get_config()
  config.data.name = "kmnist"
  config.eval.sampler = "gmm"
  with pytest.raises(errors.ConfigError, match=r"eval.sampler='gmm'.*cgan family has no encoder"):
    validation.validate_config(config)
