"""Issue 11: the shipped reference evaluators and the metrics beside FD/KID, each against an
oracle (precision/recall/density/coverage, memorisation, the Classification Accuracy Score)."""

import dataclasses
import os

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from kjax import data as kdata
from kjax import metrics
from kjax.evaluation import cas, domain, memorisation
from tests.conftest import on_real_kmnist


def _literal_prdc(real, fake, k):
  """The prdc package's algorithm (Naeem et al. 2020, github.com/clovaai/
  generative-evaluation-prdc) written out with scikit-learn's distances, unblocked."""
  kth = lambda d: np.sort(d, axis=1)[:, k]  # noqa: E731  (index 0: the point itself)
  real_r, fake_r = kth(pairwise_distances(real)), kth(pairwise_distances(fake))
  d = pairwise_distances(real, fake)
  inside = d < real_r[:, None]
  return {"precision": inside.any(0).mean(), "recall": (d < fake_r[None, :]).any(1).mean(),
          "density": inside.sum(0).mean() / k, "coverage": (d.min(1) < real_r).mean()}


def test_prdc_equals_the_reference_algorithm_in_blocks():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(700, 16)), rng.normal(0.3, 1.2, size=(500, 16))
  ours = metrics.precision_recall_density_coverage(real, fake, 5, block=128)
  expected = _literal_prdc(real, fake, 5)
  assert ours == pytest.approx(expected, abs=1e-12)
  disjoint = metrics.precision_recall_density_coverage(real, fake + 100.0, 5)
  assert disjoint == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
  with pytest.raises(Exception, match="k=5 are not allowed"):
    metrics.precision_recall_density_coverage(real[:5], fake, 5)


def test_prdc_reproduces_the_prdc_readme_for_two_samples_of_one_gaussian():
  """prdc's README: 10,000 + 10,000 draws of N(0, I_1000), k = 5 give precision 0.4772,
  recall 0.4705, density 1.0555, coverage 0.9735 "(may fluctuate due to randomness)".
  Four seeds here gave precision 0.465–0.497, recall 0.474–0.480, density 0.96–1.15,
  coverage 0.962–0.980: the tolerances are that spread."""
  rng = np.random.default_rng(2)
  real, fake = rng.normal(size=(10000, 1000)), rng.normal(size=(10000, 1000))
  got = metrics.precision_recall_density_coverage(real, fake, 5)
  assert got["precision"] == pytest.approx(0.4772, abs=0.035)
  assert got["recall"] == pytest.approx(0.4705, abs=0.015)
  assert got["density"] == pytest.approx(1.0555, abs=0.12)
  assert got["coverage"] == pytest.approx(0.9735, abs=0.015)


def test_memorisation_flags_copies_of_training_images():
  rng = np.random.default_rng(0)
  train = rng.random((400, 30))
  held_out = rng.random((200, 30))  # same distribution, never seen
  d_real, _ = metrics.nearest_neighbours(held_out, train)
  d_fresh, _ = metrics.nearest_neighbours(rng.random((200, 30)), train)
  ratio, fraction = memorisation.copy_statistics(d_fresh, d_real)
  assert 0.9 < ratio < 1.1 and fraction < 0.05
  copies = train[rng.choice(400, 200)] + rng.normal(0, 1e-3, (200, 30))
  d_copies, index = metrics.nearest_neighbours(copies, train, block=64)
  ratio, fraction = memorisation.copy_statistics(d_copies, d_real)
  assert ratio < 0.01 and fraction == 1.0
  assert np.array_equal(train[index], train[np.argmin(pairwise_distances(copies, train), 1)])


@pytest.mark.parametrize("name", ["kmnist", "mnist"])
def test_each_shipped_evaluator_has_its_hash_and_accuracy(name, kmnist_dir, mnist_dir):
  entry = domain.reference_entries()[name]
  evaluator = domain.load_reference(name)
  assert evaluator.params_sha256 == entry["params_sha256"]
  assert entry["train_split"] == "test[:8000]" and entry["eval_split"] == "test[8000:]"
  assert "launch.py --config=configs/classifier.py" in entry["command"]
  assert os.path.getsize(os.path.join(domain.REFERENCE_DIR, entry["file"])) < 1_000_000
  from configs import classifier  # noqa: PLC0415
  config = classifier.get_config()
  config.data.name = name
  config.data.data_dir = {"kmnist": kmnist_dir, "mnist": mnist_dir}[name]
  config.data.train_split, config.data.eval_split = "test[:16]", "test[8000:]"
  _, eval_ds = kdata.load_datasets(config.data)
  accuracy = np.mean(evaluator.predict(eval_ds.images / 255.0) == eval_ds.labels)
  assert accuracy == pytest.approx(entry["eval_accuracy"], abs=0.002)  # float32 predictions
  assert accuracy > {"kmnist": 0.97, "mnist": 0.99}[name]


def test_evaluator_features_do_not_depend_on_the_convolution_kernels(kmnist_dir):
  """Features are float64: two kernel implementations (XLA's convolution, kjax's matmul
  form: other summation orders, as another CPU's would be) agree to ~1e-12, and FD on them
  to far below the precision the README quotes."""
  reference = domain.load_reference("kmnist")
  from configs import classifier  # noqa: PLC0415
  config = classifier.get_config()
  config.data.data_dir = kmnist_dir
  config.data.train_split, config.data.eval_split = "test[:16]", "test[9000:9400]"
  _, eval_ds = kdata.load_datasets(config.data)
  x = eval_ds.images / 255.0
  features = {}
  for impl in ("xla", "matmul"):
    c = reference.config.copy_and_resolve_references()
    c.model.conv_impl = impl
    other = dataclasses.replace(reference, config=c)
    features[impl] = other.features(x)
  assert features["xla"].dtype == np.float64
  np.testing.assert_allclose(features["xla"], features["matmul"], rtol=1e-10, atol=1e-12)
  fd = [metrics.frechet_distance(f[:200], f[200:]) for f in features.values()]
  assert fd[0] == pytest.approx(fd[1], rel=1e-6)  # FD's matrix square root amplifies 1e-10


def test_cas_is_high_for_real_data_and_chance_for_wrong_labels(kmnist_dir, tmp_path):
  from configs import classifier  # noqa: PLC0415
  config = on_real_kmnist(classifier.get_config(), kmnist_dir, tmp_path)
  config.seed = 0
  config.data.train_split, config.data.eval_split = "test[:1000]", "test[9000:9500]"
  clf = cas.recipe(config, num_epochs=3)
  train_ds, eval_ds = kdata.load_datasets(config.data)
  right = cas.train_and_test(clf, train_ds.images, train_ds.labels, eval_ds.images,
                             eval_ds.labels)
  wrong = cas.train_and_test(clf, train_ds.images, np.random.default_rng(0).permutation(
      train_ds.labels), eval_ds.images, eval_ds.labels)
  assert right > 0.6 and wrong < 0.25  # chance: 0.1
