"""Evaluation (issue 4): metrics of generated images against oracles, and the evaluation of
trained runs end to end (metrics.json, figures, report.html, --mode=evaluate)."""

import base64
import json
import os
import re

import numpy as np
import pytest

from configs import beta_vae as beta_vae_config
from configs import cgan as cgan_config
from configs import cvae as cvae_config
from kjax import errors, evaluation, experiment, launcher
from kjax.evaluation import base, domain, factors, latents
from kjax import frames as kframes
from kjax import data as kdata
from kjax.data import style
from tests.conftest import evaluate_with, on_real_kmnist, quick_eval

VAE_METRICS = {"nelbo", "rec", "kl", "iwae_nll", "rec_mse", "active_units", "kl_per_dimension",
               "unit_activity", "inpainting_patch_mse", "masked_patch_mse"}
SAMPLE_METRICS = {"fd", "kid", "kid_std", "fd_real_train_vs_eval", "kid_real_train_vs_eval",
                  "precision", "recall", "density", "coverage", "precision_real_train_vs_eval",
                  "recall_real_train_vs_eval", "density_real_train_vs_eval",
                  "coverage_real_train_vs_eval"}
MEMORISATION_METRICS = {"memorisation_pixel_ratio", "memorised_fraction_pixel",
                        "memorisation_feature_ratio", "memorised_fraction_feature"}
DISENTANGLEMENT_METRICS = {"mig", "mig_per_factor", "dci_disentanglement", "dci_completeness",
                           "dci_informativeness", "dci_informativeness_per_factor", "sap",
                           "sap_per_factor", "factor_vae_score", "factor_vae_active_dims"}
CONDITIONAL_METRICS = {"class_accuracy", "class_balanced_accuracy", "class_accuracy_per_class",
                       "style_accuracy",
                       "thickness_shift_pixels", "real_thickness_gap_pixels",
                       "style_accuracy_ink", "thickness_shift_ink_pixels",
                       "real_thickness_gap_ink_pixels"}


def test_style_accuracy_is_one_on_real_images_labelled_by_their_own_statistic(kmnist_dir,
                                                                             tmp_path):
  config = on_real_kmnist(cvae_config.get_config(), kmnist_dir, tmp_path,
                          train_split="test[:5000]", eval_split="test[5000:]")
  train_ds, eval_ds = kdata.load_datasets(config.data)
  counts = style.foreground_pixel_count(train_ds.images)
  thresholds = style.class_thresholds(counts, train_ds.labels, 10, "median")
  # The eval split's styles come from the train split's thresholds: a perfect "generator".
  assert evaluation.style.style_accuracy(eval_ds.images, eval_ds.labels, eval_ds.styles,
                                 thresholds) == 1.0
  assert evaluation.style.style_accuracy(eval_ds.images, eval_ds.labels, 1 - eval_ds.styles,
                                 thresholds) == 0.0
  # Strokes widened by one pixel: far more images pass as thick than before.
  thick = np.maximum(eval_ds.images, np.roll(eval_ds.images, 1, axis=2))
  ones = np.ones(len(thick), int)
  before = evaluation.style.style_accuracy(eval_ds.images, eval_ds.labels, ones, thresholds)
  assert evaluation.style.style_accuracy(thick, eval_ds.labels, ones, thresholds) > before + 0.2


def test_class_accuracy_and_its_balanced_form():
  labels = np.array([0, 0, 0, 0, 1])
  predicted = np.array([0, 0, 0, 0, 0])
  acc, balanced = evaluation.style.class_accuracy(predicted, labels, 3)
  assert acc == pytest.approx(0.8) and balanced == pytest.approx(0.5)  # class 2 absent


def test_params_hash_identifies_parameters():
  params = {"dense": {"kernel": np.ones((2, 3), np.float32), "bias": np.zeros(3, np.float32)}}
  same = {"dense": {"kernel": np.ones((2, 3), np.float32), "bias": np.zeros(3, np.float32)}}
  assert evaluation.params_sha256(params) == evaluation.params_sha256(same)
  same["dense"]["bias"][1] = 1e-7
  assert evaluation.params_sha256(params) != evaluation.params_sha256(same)
  assert re.fullmatch(r"[0-9a-f]{64}", evaluation.params_sha256(params))


def _figures_in_report(workdir):
  """{figure path: embedded bytes} of the report; asserts the list matches the figures."""
  with open(os.path.join(workdir, "report.html"), encoding="utf-8") as f:
    page = f.read()
  listed = re.findall(r"<li><a href='#fig-(\d+)'>([^<]+)</a></li>", page)
  embedded = dict(re.findall(r"<figure id='fig-(\d+)'><img alt='[^']*' src='data:image/"
                             r"(?:png|gif);base64,([A-Za-z0-9+/=]+)'>", page))
  assert listed and {i for i, _ in listed} == set(embedded)
  return {name: base64.b64decode(embedded[i]) for i, name in listed}, page


def _check_report(workdir, result):
  figures, page = _figures_in_report(workdir)
  for path in result["figures"]:  # every evaluation figure is listed and embedded intact
    with open(os.path.join(workdir, path), "rb") as f:
      assert figures[path] == f.read(), path
  assert any(p.startswith("figures/") for p in figures)  # and the training figures
  for name in result["metrics"]:
    assert f"<td>{name}</td>" in page
  assert "http" not in page.split("<h2>Config</h2>")[0]  # self-contained: nothing fetched


def test_cvae_run_is_evaluated_at_the_end_and_again_with_mode_evaluate(
    kmnist_dir, tmp_path, kmnist_classifier):
  config = on_real_kmnist(cvae_config.get_config(), kmnist_dir, tmp_path,
                          train_split="test[:1000]", eval_split="test[9600:]", batch_size=100)
  config.eval.classifier_workdir = kmnist_classifier[0]
  workdir = str(tmp_path / "cvae")
  experiment.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    result = json.load(f)

  metrics = result["metrics"]
  assert VAE_METRICS | SAMPLE_METRICS | CONDITIONAL_METRICS <= set(metrics)
  assert all(np.all(np.isfinite(v)) for v in metrics.values())
  assert np.mean(metrics["class_accuracy_per_class"]) == pytest.approx(
      metrics["class_balanced_accuracy"])
  assert metrics["nelbo"] >= metrics["iwae_nll"] - 0.5  # the bound is tighter, up to noise
  assert len(metrics["kl_per_dimension"]) == 2
  assert sum(metrics["kl_per_dimension"]) == pytest.approx(metrics["kl"], rel=1e-3)
  assert 0.0 <= metrics["class_accuracy"] <= 1 and 0 <= metrics["style_accuracy"] <= 1
  assert metrics["fd"] > metrics["fd_real_train_vs_eval"] > 0  # 10 steps: far from real
  assert result["classifier"]["params_sha256"] == evaluation.load_classifier(
      kmnist_classifier[0], "kmnist").params_sha256
  assert result["protocol"]["iwae_samples"] == 16 and result["protocol"]["num_generated"] == 400
  for name in ("kl_per_dimension.png", "inpainting.png", "traversals.png",
               "interpolation_encoded.gif", "training_samples.gif",
               "training_reconstructions.gif"):
    assert f"eval/{name}" in result["figures"], name
  _check_report(workdir, result)

  # --mode=evaluate on the workdir restores the checkpoint and gives the same numbers.
  os.remove(os.path.join(workdir, "eval", "metrics.json"))
  assert launcher.run(config, workdir, mode="evaluate") == 0
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    again = json.load(f)
  assert again["metrics"] == metrics  # bit for bit: same state, same keys

  # The ex-post sampler of a conditional VAE: one mixture per class; the prior's metrics
  # beside it are the prior evaluation's.
  # iwae_samples=2: the likelihood is not compared here, only the sample metrics are.
  gmm = evaluate_with(config, workdir, sampler="gmm", cas_epochs=0, iwae_samples=2)
  assert "one per class" in gmm["protocol"]["sampler"]
  for name in ("class_accuracy", "recall", "fd"):
    assert gmm["metrics"][f"{name}_prior"] == metrics[name], name
  assert 0 <= gmm["metrics"]["class_accuracy"] <= 1


def test_beta_vae_with_a_wider_latent_gets_a_tsne_and_traversals_by_kl(tiny_config, tmp_path):
  tiny_config.model.latent_dim = 3
  tiny_config.eval.iwae_max_examples = 50
  workdir = str(tmp_path / "run")
  experiment.train_and_evaluate(tiny_config, workdir)
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    result = json.load(f)
  metrics = result["metrics"]
  assert VAE_METRICS | DISENTANGLEMENT_METRICS <= set(metrics)
  assert result["protocol"]["iwae_examples"] == 50
  for name in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap",
               "factor_vae_score"):
    assert 0 <= metrics[name] <= 1, name
  assert len(metrics["mig_per_factor"]) == len(metrics["sap_per_factor"]) == 6
  assert result["protocol"]["disentanglement_factors"] == list(factors.FACTORS)
  # test[9800:] against the run's test[:256] and the shipped evaluator's test[:8000]
  assert result["protocol"]["eval_images_seen_in_training"] == {"run": 0, "evaluator": 0}
  assert metrics["iwae_nll"] < metrics["nelbo_iwae_examples"]  # on the same 50 images
  # No classifier given: the shipped reference evaluator gives the sample metrics.
  assert SAMPLE_METRICS | MEMORISATION_METRICS <= set(metrics)
  shipped = domain.reference_entries()["kmnist"]
  assert result["classifier"]["params_sha256"] == shipped["params_sha256"]
  assert result["classifier"]["source"] == "reference:kmnist"
  assert 0 <= metrics["precision"] <= 1 and 0 <= metrics["coverage"] <= 1
  assert "eval/tsne.png" in result["figures"]
  epochs, tiles = kframes.load_frames(os.path.join(workdir, kframes.FRAMES_DIR))
  assert epochs == [1, 2] and tiles["samples"][0].shape == (8 * 29 + 1, 8 * 29 + 1)
  _check_report(workdir, result)


def test_cgan_metrics_without_an_encoder(kmnist_dir, tmp_path, kmnist_classifier):
  config = on_real_kmnist(cgan_config.get_config(), kmnist_dir, tmp_path,
                          train_split="test[:256]", eval_split="test[9700:]")
  config.model.architecture = "mlp"
  config.model.hidden = 32
  config.eval.classifier_workdir = kmnist_classifier[0]
  config.eval.cas_epochs = 1  # the Classification Accuracy Score end to end
  workdir = str(tmp_path / "gan")
  experiment.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    result = json.load(f)
  assert (SAMPLE_METRICS | CONDITIONAL_METRICS | MEMORISATION_METRICS
          | {"cas", "cas_real_reference"}) == set(result["metrics"])
  assert 0 <= result["metrics"]["cas"] <= 1 and "1 epochs on 256 samples" in result["protocol"]["cas"]
  assert "eval/interpolation_noise.gif" in result["figures"]
  assert "eval/memorisation.png" in result["figures"]
  _check_report(workdir, result)


def test_bad_evaluation_input_stops_before_anything_is_written(kmnist_dir, mnist_dir, tmp_path,
                                                               kmnist_classifier):
  config = on_real_kmnist(beta_vae_config.get_config(), kmnist_dir, tmp_path)
  config.eval.classifier_workdir = str(tmp_path / "nope")
  workdir = tmp_path / "never"
  with pytest.raises(errors.ConfigError, match="classifier_workdir=.*nope.* is not a kjax run"):
    experiment.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()
  config.data.name, config.data.data_dir = "mnist", mnist_dir  # a KMNIST classifier, MNIST run
  config.eval.classifier_workdir = kmnist_classifier[0]
  with pytest.raises(errors.ConfigError, match="is a classifier of kmnist; this run is on mnist"):
    experiment.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()
  with pytest.raises(errors.ConfigError, match="is not a kjax run"):
    evaluation.evaluate_workdir(config, str(workdir))
  config.eval.iwae_samples = 0
  with pytest.raises(errors.ConfigError, match="config.eval.iwae_samples=0 is not allowed"):
    evaluation.evaluate_workdir(config, str(workdir))
  assert not workdir.exists()


def test_an_iwae_bound_in_every_epochs_eval(kmnist_dir, tmp_path):
  config = on_real_kmnist(cvae_config.get_config(), kmnist_dir, tmp_path, batch_size=64)
  config.eval.epoch_iwae_samples = 32
  config.eval.at_end_of_training = False
  workdir = tmp_path / "run"
  experiment.train_and_evaluate(config, str(workdir))
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert len(rows) == 2
  for row in rows:  # k = 32 is a tighter bound than the ELBO (one sample) on the same images
    assert row["eval/iwae_nll"] < row["eval/nelbo"]
  assert not (workdir / "eval").exists() and not (workdir / "report.html").exists()


def test_k49_class_metrics_are_balanced_over_49_classes(synthetic_k49_dir, tmp_path):
  """The K49 path end to end on official-format synthetic files: a 49-class domain
  classifier, then a CVAE evaluated with it (per-class and balanced accuracy)."""
  from configs import classifier as classifier_config  # noqa: PLC0415

  def on_synthetic_k49(config):
    config.data.data_dir = synthetic_k49_dir
    config.data.verify_checksums = False
    config.data.cache_dir = str(tmp_path / "cache")
    config.data.eval_split = "test[:98]"
    config.train.num_epochs = 1
    return quick_eval(config)

  clf_config = on_synthetic_k49(classifier_config.get_config())
  clf_config.data.name = "k49"
  experiment.train_and_evaluate(clf_config, str(tmp_path / "clf"))
  with open(tmp_path / "clf" / "eval" / "metrics.json") as f:
    assert 0 <= json.load(f)["metrics"]["balanced_accuracy"] <= 1
  config = on_synthetic_k49(cvae_config.get_config())  # data.name is k49, the default
  config.figures.samples_per_style = 1
  config.eval.classifier_workdir = str(tmp_path / "clf")
  experiment.train_and_evaluate(config, str(tmp_path / "cvae"))
  with open(tmp_path / "cvae" / "eval" / "metrics.json") as f:
    metrics = json.load(f)["metrics"]
  per_class = metrics["class_accuracy_per_class"]
  assert len(per_class) == 49 and None not in per_class  # every class among 98 eval images
  assert np.mean(per_class) == pytest.approx(metrics["class_balanced_accuracy"])


def test_tsne_is_skipped_for_a_collapsed_posterior():
  """No active unit: no t-SNE (scikit-learn's PCA init divides by the zero spread)."""
  run = base.Run(None, "", None, None, 0, None, None,
                 _cache={"posterior": (np.zeros((50, 10), np.float32),) * 2})
  out = latents.tsne(run)
  assert out.figures == [] and "collapsed" in out.protocol["tsne"]


def test_eval_images_the_evaluator_trained_on_are_recorded_with_a_warning(caplog):
  """Issue 28: the official-split protocol (eval on ``test``) with the shipped KMNIST
  evaluator (trained on ``test[:8000]``): 8,000 eval images it trained on, one warning."""
  import logging  # noqa: PLC0415
  import types  # noqa: PLC0415
  from kjax.evaluation import run as evaluation_run  # noqa: PLC0415
  config = beta_vae_config.get_config()
  config.data.name, config.data.train_split, config.data.eval_split = "kmnist", "train", "test"
  evaluator = types.SimpleNamespace(config=types.SimpleNamespace(
      data=types.SimpleNamespace(name="kmnist", train_split="test[:8000]")))
  with caplog.at_level(logging.WARNING):
    assert evaluation_run._seen(config, evaluator) == {"run": 0, "evaluator": 8000}
  lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert len(lines) == 1 and "'test[:8000]', which holds 8000 images of the eval split " \
      "'test'" in lines[0]
  assert evaluation_run._seen(config, None) == {"run": 0}
