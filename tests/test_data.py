"""Readers, checksums, split selection and both sources, on the real files and synthetic ones."""

import dataclasses
import json
import gzip
import os
import shutil
import struct

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from kjax import data as kdata
from kjax.data import catalog, loading, local, readers, splits, tfds_builders


def _write_idx(path, array):
  header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def _data_config(data_dir, **overrides):
  config = ml_collections.ConfigDict(dict(
      name="kmnist", data_dir=str(data_dir), tfds_data_dir="", train_split="test[:8000]",
      eval_split="test[8000:]", verify_checksums=True, style_pixel_threshold=0,
      style_reduction="median", cache_dir=""))
  config.update(overrides)
  return config


@pytest.mark.parametrize("name", ["kmnist", "mnist"])
def test_real_test_split_reads_and_verifies(name, kmnist_dir, mnist_dir):
  data_dir = kmnist_dir if name == "kmnist" else mnist_dir
  info = catalog.get_dataset_info(name)
  images, labels = local.load_split_arrays(info, data_dir, "test")
  assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (10_000,) and labels.dtype == np.int32
  assert set(np.unique(labels)) == set(range(10))
  if name == "kmnist":
    assert np.all(np.bincount(labels) == 1000)  # KMNIST's test split is balanced


def test_idx_reader_rejects_bad_headers(tmp_path):
  path = tmp_path / "bad-idx3-ubyte.gz"
  with gzip.open(path, "wb") as f:
    f.write(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 28, 28) + b"\x00" * 100)
  with pytest.raises(ValueError, match="payload"):
    readers.read_idx(path)
  with gzip.open(path, "wb") as f:
    f.write(b"PK\x03\x04")
  with pytest.raises(ValueError, match="not an idx file"):
    readers.read_idx(path)


def test_checksum_mismatch_names_file_and_both_checksums(tmp_path, kmnist_dir):
  for f in os.listdir(kmnist_dir):
    shutil.copy(os.path.join(kmnist_dir, f), tmp_path / f)
  images = readers.read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
  images[0, 0, 0] ^= 1
  _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
  actual = readers.file_sha256(tmp_path / "t10k-images-idx3-ubyte.gz")
  with pytest.raises(readers.ChecksumError) as e:
    local.load_split_arrays(catalog.KMNIST, str(tmp_path), "test")
  message = str(e.value)
  assert "t10k-images-idx3-ubyte.gz" in message and actual in message
  assert catalog.KMNIST.files["test"][0].images.sha256 in message
  # Non-official files are accepted when asked to.
  got, _ = local.load_split_arrays(catalog.KMNIST, str(tmp_path), "test", verify_checksums=False)
  np.testing.assert_array_equal(got, images)


def test_missing_file_names_file_url_and_folder(tmp_path):
  with pytest.raises(readers.DataFileNotFoundError) as e:
    local.load_split_arrays(catalog.KMNIST, str(tmp_path), "train")
  message = str(e.value)
  assert "train-images-idx3-ubyte.gz" in message
  assert "http://codh.rois.ac.jp/kmnist/dataset/kmnist/train-images-idx3-ubyte.gz" in message
  assert str(tmp_path) in message and "kmnist-train-imgs.npz" in message


def test_npz_variant_verified_by_content(tmp_path, kmnist_dir):
  images, labels = local.load_split_arrays(catalog.KMNIST, kmnist_dir, "test")
  np.savez_compressed(tmp_path / "kmnist-test-imgs.npz", images)
  np.savez_compressed(tmp_path / "kmnist-test-labels.npz", labels.astype(np.uint8))
  got_images, got_labels = local.load_split_arrays(catalog.KMNIST, str(tmp_path), "test")
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
  images[5, 5, 5] += 1
  np.savez_compressed(tmp_path / "kmnist-test-imgs.npz", images)
  with pytest.raises(readers.ChecksumError, match="decoded array"):
    local.load_split_arrays(catalog.KMNIST, str(tmp_path), "test")


def test_split_slicing_matches_numpy(kmnist_dir):
  images, labels = local.load_split_arrays(catalog.KMNIST, kmnist_dir, "test")
  got, got_labels = loading.load_split_arrays(_data_config(kmnist_dir), "test[8000:]")
  np.testing.assert_array_equal(got, images[8000:])
  np.testing.assert_array_equal(got_labels, labels[8000:])
  got, _ = loading.load_split_arrays(_data_config(kmnist_dir), "test[:10%]+test[-5:]")
  np.testing.assert_array_equal(got, np.concatenate([images[:1000], images[-5:]]))


@pytest.mark.parametrize("spec, match", [
    ("test[20000:]", r"'test\[20000:\]'.*test has 10000 examples"),
    ("test[5:5]", r"selects no examples of 'test' \(which has 10000"),
    ("validation", r"'validation'.*train has 60000 examples"),
    ("test[a:]", r"'test\[a:\]' is not valid"),
])
def test_bad_splits_name_the_split_and_its_size(spec, match):
  with pytest.raises(ValueError, match=match):
    splits.resolve_split(spec, catalog.KMNIST.split_sizes)


def test_unknown_data_set():
  with pytest.raises(ValueError, match=r"config.data.name='nope'.*k49, kmnist, mnist"):
    catalog.get_dataset_info("nope")


def _synthetic_info(tmp_path, n_train=40, n_test=24):
  """A catalogue entry over synthetic official-format files, with their own checksums."""
  rng = np.random.default_rng(0)
  files, arrays = {}, {}
  for split, n in (("train", n_train), ("test", n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, (n,), dtype=np.uint8)
    official = catalog.KMNIST.files[split][0]
    specs = []
    for spec, array in ((official.images, images), (official.labels, labels)):
      path = tmp_path / "downloads" / spec.filename
      path.parent.mkdir(exist_ok=True)
      _write_idx(path, array)
      specs.append(dataclasses.replace(spec, url=f"file://{path}",
                                       sha256=readers.file_sha256(path)))
    files[split] = (catalog.SplitFiles(*specs),)
    arrays[split] = (images, labels)
  info = dataclasses.replace(catalog.KMNIST, name="synthetic",
                             split_sizes={"train": n_train, "test": n_test}, files=files)
  return info, arrays


def test_tfds_builder_prepares_and_reads_without_tensorflow(tmp_path, monkeypatch):
  info, arrays = _synthetic_info(tmp_path)
  # Offline: TFDS's download manager hands back the local files instead of fetching URLs.
  def fake_download(self, url_or_urls):
    return tfds.core.utils.map_nested(lambda url: url[len("file://"):], url_or_urls)
  monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
  images, labels = tfds_builders.load_split_arrays(info, "train[10:30]", str(tmp_path / "tfds"))
  np.testing.assert_array_equal(images, arrays["train"][0][10:30])
  np.testing.assert_array_equal(labels, arrays["train"][1][10:30])
  builder = tfds_builders.builder_for(info, str(tmp_path / "tfds"))
  assert builder.info.splits["test"].num_examples == 24
  assert "tensorflow" not in __import__("sys").modules


def test_tfds_source_under_mock_data():
  config = _data_config("")  # no data_dir: the TFDS source
  with tfds.testing.mock_data(num_examples=12):
    images, labels = loading.load_split_arrays(config, "test[:12]")
  assert images.shape == (12, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (12,) and labels.max() < 10


def test_load_datasets_gives_uint8_nhwc_and_styles(kmnist_dir, tmp_path):
  train, evaluation = loading.load_datasets(
      _data_config(kmnist_dir, cache_dir=str(tmp_path)))
  assert train.images.shape == (8000, 28, 28, 1) and train.images.dtype == np.uint8
  assert evaluation.images.shape == (2000, 28, 28, 1)
  for ds in (train, evaluation):
    assert set(np.unique(ds.styles)) == {0, 1}
    assert 0.4 < ds.styles.mean() < 0.6  # median split: about half thick


def test_tfds_download_failure_is_one_clear_error(tmp_path, monkeypatch, reachable):
  def offline(self, url_or_urls):
    raise ConnectionError("Failed to resolve 'codh.rois.ac.jp'")
  monkeypatch.setattr(tfds.download.DownloadManager, "download", offline)
  with pytest.raises(readers.DataFileNotFoundError,
                     match=r"could not download kmnist through TFDS .*--config.data.data_dir"):
    tfds_builders.load_split_arrays(catalog.KMNIST, "test", str(tmp_path))


def test_non_official_files_are_sliced_by_their_own_size(tmp_path):
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
  _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, (30,), dtype=np.uint8))
  config = _data_config(tmp_path, verify_checksums=False)
  got, _ = loading.load_split_arrays(config, "test[20:]")
  np.testing.assert_array_equal(got, images[20:])
  with pytest.raises(ValueError, match=r"'test\[:40\]'.*test has 30 examples"):
    loading.load_split_arrays(config, "test[:40]")
  with pytest.raises(readers.ChecksumError):  # and refused unless asked
    loading.load_split_arrays(_data_config(tmp_path), "test[20:]")


def test_k49_official_format_reads_with_md5_verification(synthetic_k49_dir):
  info = catalog.get_dataset_info("k49")
  assert info.num_classes == len(info.class_names) == len(info.class_romaji) == 49
  assert info.label(1) == "1 い (i)" and info.class_names[-1] == "ゝ"
  # The synthetic files are not the official release: MD5 mismatch, named with both sums.
  with pytest.raises(readers.ChecksumError) as e:
    local.load_split_arrays(info, synthetic_k49_dir, "train")
  actual = readers.file_digest(os.path.join(synthetic_k49_dir, "k49-train-imgs.npz"), "md5")
  assert "MD5" in str(e.value) and actual in str(e.value)
  assert "7ac088b20481cf51dcd01ceaab89d821" in str(e.value)
  images, labels = local.load_split_arrays(info, synthetic_k49_dir, "train",
                                           verify_checksums=False)
  assert images.shape == (300, 28, 28) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and set(np.unique(labels)) == set(range(49))


def test_k49_missing_file_names_its_url(tmp_path):
  with pytest.raises(readers.DataFileNotFoundError,
                     match=r"k49-test-imgs.npz not found.*http://codh.rois.ac.jp/kmnist/"
                           r"dataset/k49/k49-test-imgs.npz"):
    local.load_split_arrays(catalog.K49, str(tmp_path), "test")


def test_k49_tfds_builder_on_official_format_files(tmp_path, monkeypatch):
  from tests.conftest import write_synthetic_k49
  arrays = write_synthetic_k49(str(tmp_path), n_train=60, n_test=49)
  files = {split: (catalog.SplitFiles(*[
      dataclasses.replace(spec, url=f"file://{tmp_path / spec.filename}",
                          md5=readers.file_digest(tmp_path / spec.filename, "md5"))
      for spec in (f.images, f.labels)]),) for split, (f,) in catalog.K49.files.items()}
  info = dataclasses.replace(catalog.K49, split_sizes={"train": 60, "test": 49}, files=files)
  monkeypatch.setattr(tfds.download.DownloadManager, "download",
                      lambda self, urls: tfds.core.utils.map_nested(lambda u: u[7:], urls))
  images, labels = tfds_builders.load_split_arrays(info, "test", str(tmp_path / "tfds"))
  np.testing.assert_array_equal(images, arrays["test"][0])
  np.testing.assert_array_equal(labels, arrays["test"][1])
  assert tfds_builders.builder_for(info, str(tmp_path / "tfds")).name == "kjax_k49"


def test_binarisation_keeps_each_pixels_mean_and_is_fixed_or_fresh(kmnist_dir, tmp_path):
  """Issue 11: ``data.binarize``: a pixel of value v becomes 255 with probability v / 255."""
  import jax  # noqa: PLC0415
  from configs import iwae_mnist  # noqa: PLC0415
  from kjax import train  # noqa: PLC0415
  from kjax.data import loading  # noqa: PLC0415
  from tests.conftest import on_real_kmnist  # noqa: PLC0415
  config = on_real_kmnist(iwae_mnist.get_config(), kmnist_dir, tmp_path,
                          train_split="test[:500]", eval_split="test[9500:]")
  grey_train, grey_eval = kdata.load_datasets(
      ml_collections.ConfigDict({**config.data.to_dict(), "binarize": "none"}))
  images = grey_train.images
  fixed = loading.binarize(images, 0)
  fresh = np.asarray(train.binarize_batch(jax.numpy.asarray(images), jax.random.key(0)))
  for b in (fixed, fresh):
    assert set(np.unique(b)) == {0, 255} and b.dtype == np.uint8
    assert np.all(b[images == 0] == 0) and np.all(b[images == 255] == 255)
    # E[b] = v over 392,000 pixels: the means agree to well within 5 standard errors.
    assert abs(b.mean() - images.mean()) / 255 < 5 * 0.5 / np.sqrt(images.size)
    mid = (images > 100) & (images < 156)  # v/255 ≈ 0.5: about half on, half off
    assert 0.4 < np.mean(b[mid] == 255) < 0.6
  assert np.array_equal(fixed, loading.binarize(images, 0))  # static: the same every time
  assert np.mean(fixed != loading.binarize(images, 1)) > 0.01
  other = np.asarray(train.binarize_batch(jax.numpy.asarray(images), jax.random.key(1)))
  assert np.mean(fresh != other) > 0.01  # dynamic: fresh with each step's key

  for mode, train_binary in (("dynamic", False), ("static", True)):
    config.data.binarize = mode
    train_ds, eval_ds = kdata.load_datasets(config.data)
    assert np.array_equal(eval_ds.images, loading.binarize(grey_eval.images, 1))
    assert np.array_equal(train_ds.images, fixed) == train_binary
    assert np.array_equal(train_ds.styles, grey_train.styles)  # styles of the grey images


def test_iwae_mnist_config_trains_the_papers_model_on_binarised_batches(kmnist_dir, tmp_path):
  """configs/iwae_mnist.py end to end at test size: the 784-200-200-50 tanh VAE, dynamic
  binarisation, the paper's Adam and schedule; the IWAE bound is tighter than the ELBO."""
  import jax.numpy as jnp  # noqa: PLC0415
  from configs import iwae_mnist  # noqa: PLC0415
  from kjax import experiment  # noqa: PLC0415
  from kjax.tasks import vae  # noqa: PLC0415
  from tests.conftest import on_real_kmnist  # noqa: PLC0415
  config = on_real_kmnist(iwae_mnist.get_config(), kmnist_dir, tmp_path,
                          train_split="test[:200]", eval_split="test[9900:]", batch_size=20)
  config.eval.iwae_samples, config.eval.iwae_max_examples = 64, 40
  config.eval.classifier_workdir = "none"
  workdir = tmp_path / "run"
  experiment.train_and_evaluate(config, str(workdir))
  result = json.loads((workdir / "eval" / "metrics.json").read_text())
  assert "binarised" in result["protocol"]["likelihood"]
  metrics = result["metrics"]
  assert metrics["iwae_nll"] < metrics["nelbo_iwae_examples"]
  assert len(metrics["kl_per_dimension"]) == 50
  schedule = vae.iwae_schedule(1e-3, steps_per_epoch=10)  # stages of 1, 3, 9, ... epochs
  rates = [float(schedule(jnp.asarray(s))) for s in (0, 9, 10, 39, 40, 129, 130, 10**6)]
  expected = [1e-3, 1e-3, 1e-3 * 10 ** (-1 / 7), 1e-3 * 10 ** (-1 / 7), 1e-3 * 10 ** (-2 / 7),
              1e-3 * 10 ** (-2 / 7), 1e-3 * 10 ** (-3 / 7), 1e-4]
  np.testing.assert_allclose(rates, expected, rtol=1e-6)


# --- Offline: TFDS downloads fail in seconds (issue 13) ------------------------------------

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def no_proxy_env(monkeypatch):
  for name in _PROXY_VARS:
    monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def offline(monkeypatch, no_proxy_env):
  """No network: every TCP connection fails as an unresolvable name does; returns the
  ``(host, port)`` of each attempt. TFDS's downloader must not be reached at all."""
  import socket  # noqa: PLC0415
  attempts = []

  def unresolvable(address, timeout=None, *args, **kwargs):
    attempts.append(address)
    raise socket.gaierror(-2, "Name or service not known")

  def no_download(*args, **kwargs):
    raise AssertionError("TFDS's downloader was reached: the probe did not stop it")

  monkeypatch.setattr(socket, "create_connection", unresolvable)
  monkeypatch.setattr(tfds.download.DownloadManager, "download", no_download)
  return attempts


@pytest.fixture
def reachable(monkeypatch, no_proxy_env):
  """Every host answers the probe (no real connection is made); returns the ``(host,
  port)`` of each probe."""
  import socket  # noqa: PLC0415
  probed = []

  class Connection:
    def close(self):
      pass

  def connect(address, timeout=None, *args, **kwargs):
    probed.append(address)
    return Connection()

  monkeypatch.setattr(socket, "create_connection", connect)
  return probed


def test_offline_k49_download_fails_in_seconds_with_the_usual_message(offline, tmp_path):
  import time  # noqa: PLC0415
  start = time.perf_counter()
  with pytest.raises(kdata.DataFileNotFoundError) as e:
    tfds_builders.load_split_arrays(catalog.K49, "test", str(tmp_path / "tfds"))
  assert time.perf_counter() - start < 10
  message = str(e.value)
  assert message.startswith("could not download k49 through TFDS (codh.rois.ac.jp cannot be "
                            "resolved: Name or service not known); without internet")
  assert "k49-test-imgs.npz" in message and "http://codh.rois.ac.jp/kmnist/" in message
  assert message.endswith("--config.data.data_dir=FOLDER") and "\n" not in message
  assert offline == [("codh.rois.ac.jp", 80)]  # one probe per host, not per file


def test_offline_cvae_default_config_fails_fast_and_writes_no_workdir(offline, tmp_path,
                                                                      capsys):
  """`launch.py --config=configs/cvae.py` offline (K49 through TFDS): one line, exit 1."""
  import time  # noqa: PLC0415
  from configs import cvae  # noqa: PLC0415
  from kjax import launcher  # noqa: PLC0415
  config = cvae.get_config()
  config.data.tfds_data_dir = str(tmp_path / "tfds")
  config.data.cache_dir = str(tmp_path / "cache")
  workdir = tmp_path / "run"
  start = time.perf_counter()
  assert launcher.run(config, str(workdir)) == 1
  assert time.perf_counter() - start < 10
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("kjax: error: could not download k49 through TFDS "
                            "(codh.rois.ac.jp cannot be resolved")
  assert not workdir.exists() and not (tmp_path / "cache").exists()


def test_probe_gives_up_on_a_silent_host(monkeypatch):
  """A network that drops packets (or a DNS server that never answers): the probe returns
  after its timeout, whatever the blocked connection attempt does."""
  import socket  # noqa: PLC0415
  import threading  # noqa: PLC0415
  import time  # noqa: PLC0415
  release = threading.Event()

  def silent(address, timeout=None, *args, **kwargs):
    release.wait(30)
    raise socket.timeout("timed out")

  monkeypatch.setattr(socket, "create_connection", silent)
  start = time.perf_counter()
  reason = tfds_builders.probe("codh.rois.ac.jp", 80, timeout=0.2)
  release.set()
  assert time.perf_counter() - start < 2
  assert reason == "no answer from codh.rois.ac.jp:80 in 0.2 s"


def test_probe_goes_where_requests_would_connect(monkeypatch, no_proxy_env):
  url = "http://codh.rois.ac.jp/kmnist/dataset/k49/k49-test-imgs.npz"
  assert tfds_builders._probe_target(url) == ("codh.rois.ac.jp", 80)
  assert tfds_builders._probe_target("https://storage.googleapis.com/a") == (
      "storage.googleapis.com", 443)
  assert tfds_builders._probe_target("file:///data/k49-test-imgs.npz") is None
  monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
  assert tfds_builders._probe_target(url) == ("proxy.example", 3128)
  monkeypatch.setenv("NO_PROXY", "codh.rois.ac.jp")
  assert tfds_builders._probe_target(url) == ("codh.rois.ac.jp", 80)


def _http_synthetic_info(tmp_path):
  """``_synthetic_info`` served from a fake ``http://`` host; returns ``(info, arrays,
  files)`` with ``files`` mapping each URL to its local file."""
  info, arrays = _synthetic_info(tmp_path)
  files, specs = {}, {}
  for split, (f,) in info.files.items():
    moved = []
    for spec in (f.images, f.labels):
      url = "http://data.example/synthetic/" + spec.filename
      files[url] = spec.url[len("file://"):]
      moved.append(dataclasses.replace(spec, url=url))
    specs[split] = (catalog.SplitFiles(*moved),)
  return dataclasses.replace(info, files=specs), arrays, files


def test_online_download_unchanged_and_its_cache_needs_no_network(tmp_path, monkeypatch,
                                                                  reachable):
  """Reachable host: TFDS's real download manager fetches the files (only HTTP is faked).
  Preparation interrupted after the download, then offline: the cached files are used,
  no host is probed."""
  import contextlib  # noqa: PLC0415
  import socket  # noqa: PLC0415
  import types  # noqa: PLC0415
  from tensorflow_datasets.core.download import downloader  # noqa: PLC0415
  info, arrays, files = _http_synthetic_info(tmp_path)
  fetched, probed = [], reachable

  @contextlib.contextmanager
  def fake_http(url, **kwargs):
    fetched.append(url)
    with open(files[url], "rb") as f:
      yield types.SimpleNamespace(url=url, headers={}), iter([f.read()])

  monkeypatch.setattr(downloader, "_open_url", fake_http)
  tfds_dir = str(tmp_path / "tfds")
  images, labels = tfds_builders.load_split_arrays(info, "test[4:]", tfds_dir)
  np.testing.assert_array_equal(images, arrays["test"][0][4:])
  np.testing.assert_array_equal(labels, arrays["test"][1][4:])
  assert probed == [("data.example", 80)] and sorted(fetched) == sorted(files)

  shutil.rmtree(tfds_builders.builder_for(info, tfds_dir).data_path)  # downloads kept

  def unresolvable(address, timeout=None, *args, **kwargs):
    probed.append(address)
    raise socket.gaierror(-2, "Name or service not known")
  monkeypatch.setattr(socket, "create_connection", unresolvable)
  images, _ = tfds_builders.load_split_arrays(info, "train", tfds_dir)
  np.testing.assert_array_equal(images, arrays["train"][0])
  assert len(probed) == 1 and len(fetched) == len(files)  # no probe, no fetch


@pytest.mark.parametrize("a, b, shared", [
    ("test", "test[:8000]", 8000), ("test[:8000]", "test[8000:]", 0), ("train", "test", 0),
    ("test[:10%]+train[:5]", "test[900:1100]+train", 105), ("test[-5:]", "test[9990:]", 5)])
def test_shared_examples_of_two_split_specs(a, b, shared):
  assert splits.shared_examples(a, b, catalog.KMNIST.split_sizes) == shared
  assert splits.shared_examples(b, a, catalog.KMNIST.split_sizes) == shared


def test_eval_images_the_run_or_its_evaluator_trained_on_are_named(kmnist_dir, caplog):
  """Issue 28: an eval split that overlaps the train split gets one warning line when it
  loads; the evaluator's overlap is counted for metrics.json (same data set only)."""
  import logging  # noqa: PLC0415
  sizes = catalog.KMNIST.split_sizes
  assert splits.eval_images_seen("kmnist", "test", sizes, "train",
                                 ("kmnist", "test[:8000]")) == {"run": 0, "evaluator": 8000}
  assert splits.eval_images_seen("kmnist", "test[8000:]", sizes, "test[:8000]",
                                 ("mnist", "test[:8000]")) == {"run": 0}
  config = _data_config(kmnist_dir)
  config.train_split, config.eval_split = "test[:300]", "test[200:400]"
  with caplog.at_level(logging.WARNING):
    kdata.load_datasets(config)
  lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert len(lines) == 1 and "'test[200:400]' shares 100 images with the train split " \
      "'test[:300]'" in lines[0]
  caplog.clear()
  config.eval_split = "test[300:400]"
  with caplog.at_level(logging.WARNING):
    kdata.load_datasets(config)
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
