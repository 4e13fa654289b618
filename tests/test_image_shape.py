"""Images of another size than 28 × 28 (issue 26): a 32 × 32 data set registered in the
catalogue (``kjax.data.catalog.register``), written in the official formats (idx ``.gz``
for train, ``.npz`` for test), trains, evaluates and draws its figures with every model
family; the loaders and the conv networks refuse the shapes they cannot take."""

import gzip
import json
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import beta_vae as beta_vae_config
from configs import cgan as cgan_config
from configs import classifier as classifier_config
from configs import cvae as cvae_config
from kjax import errors, experiment, figures, generate, tasks, validation
from kjax.data import catalog, loading, local
from kjax.evaluation import inpainting
from tests.conftest import quick_eval

NAME = "synthetic32"
SHAPE = (32, 32, 1)
NUM_CLASSES = 10
SIZES = {"train": 256, "test": 128}


def _info(name=NAME, shape=SHAPE):
  digits = tuple(str(k) for k in range(NUM_CLASSES))
  return catalog.DatasetInfo(
      name=name, num_classes=NUM_CLASSES, class_names=digits, class_romaji=digits,
      split_sizes=dict(SIZES),
      files={"train": (catalog.idx_files("", "train"),),
             "test": (catalog.npz_files("", name, "test"),)},
      homepage="(synthetic, tests/test_image_shape.py)", image_shape=shape)


def _write_idx(path, array):
  """An MNIST idx file (gzipped): uint8, big-endian dimensions."""
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
      f">{array.ndim}I", *array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def _strokes(n, size, rng):
  """uint8 ``[n, size, size]`` images of a few bright bars (thickness varies, so styles
  differ) and uint8 labels ``[n]``, every class present."""
  labels = (np.arange(n) % NUM_CLASSES).astype(np.uint8)
  images = np.zeros((n, size, size), np.uint8)
  for i in range(n):
    for _ in range(3):
      r, c, w = rng.integers(2, size - 4), rng.integers(2, size - 10), rng.integers(1, 4)
      images[i, r:r + w, c:c + 8] = rng.integers(128, 256)
  return images, labels


def write_files(folder, name=NAME, size=32, seed=0):
  """Writes the train split as idx ``.gz`` files and the test split as ``.npz`` files."""
  rng = np.random.default_rng(seed)
  images, labels = _strokes(SIZES["train"], size, rng)
  _write_idx(os.path.join(folder, "train-images-idx3-ubyte.gz"), images)
  _write_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"), labels)
  images, labels = _strokes(SIZES["test"], size, rng)
  np.savez_compressed(os.path.join(folder, f"{name}-test-imgs.npz"), images)
  np.savez_compressed(os.path.join(folder, f"{name}-test-labels.npz"), labels)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A folder of official-format 32 × 32 files, registered as ``NAME`` for the module."""
  folder = tmp_path_factory.mktemp("synthetic32")
  write_files(str(folder))
  catalog.register(_info())
  yield str(folder)
  catalog.unregister(NAME)


def _config(module, data_dir, cache_dir, **model):
  """``module``'s config on the 32 × 32 data set: 1 epoch of 8 steps (batch 32), the
  small evaluation of ``quick_eval`` without a domain evaluator or CAS."""
  config = quick_eval(module.get_config())
  config.data.name = NAME
  config.data.data_dir = data_dir
  config.data.eval_split = "test"  # its own test split (KMNIST's default is test[8000:])
  config.data.verify_checksums = False
  config.data.cache_dir = cache_dir
  config.train.num_epochs = 1
  config.train.batch_size = 32
  config.train.eval_batch_size = 128
  config.train.log_every_steps = 4
  config.train.checkpoint_every_steps = 8
  config.eval.classifier_workdir = "none"  # no domain evaluator for this data set
  config.eval.iwae_samples = 4
  config.eval.iwae_chunk_size = 4
  config.eval.tsne_max_points = 64
  config.model.update(model)
  if "samples_per_style" in config.figures:
    config.figures.samples_per_style = 1
    config.figures.progress_every_epochs = 1
  return config


# --- the catalogue and the loaders -------------------------------------------------------

def test_register_refuses_a_used_name_and_a_bad_entry(data_dir):
  with pytest.raises(errors.ConfigError, match="'kmnist' is already registered") as e:
    catalog.register(_info("kmnist"))
  assert "\n" not in str(e.value)
  with pytest.raises(errors.ConfigError, match=f"'{NAME}' is already registered"):
    catalog.register(_info())
  with pytest.raises(errors.ConfigError, match="3 channels: .* grey images only"):
    catalog.register(_info("rgb32", (32, 32, 3)))
  with pytest.raises(errors.ConfigError, match="cannot be unregistered"):
    catalog.unregister("kmnist")
  assert catalog.get_dataset_info(NAME).image_shape == SHAPE
  assert catalog.get_dataset_info("kmnist").image_shape == (28, 28, 1)


def test_both_official_formats_load_with_the_registered_shape(data_dir, tmp_path):
  data = quick_eval(beta_vae_config.get_config()).data
  data.update(name=NAME, data_dir=data_dir, verify_checksums=False, eval_split="test",
              cache_dir=str(tmp_path / "cache"))
  train, evaluation = loading.load_datasets(data)
  assert train.images.shape == (256, 32, 32, 1) and evaluation.images.shape == (128, 32, 32, 1)
  assert train.images.dtype == np.uint8 and set(train.styles) == {0, 1}


def test_files_of_another_shape_are_refused_in_one_line(data_dir, tmp_path):
  write_files(str(tmp_path), size=28)  # 28 × 28 files under the 32 × 32 data set's names
  for split, kind in (("train", "idx3-ubyte.gz"), ("test", "imgs.npz")):
    with pytest.raises(errors.DataError) as e:
      local.load_split_arrays(catalog.get_dataset_info(NAME), str(tmp_path), split, False)
    message = str(e.value)
    assert "\n" not in message and kind in message
    assert f"uint8 [{SIZES[split]}, 28, 28]" in message
    assert "(expected uint8 images [N, 32, 32])" in message


def test_conv_networks_refuse_a_height_not_divisible_by_4(data_dir):
  catalog.register(_info("synthetic30", (30, 30, 1)))
  try:
    for module, model in ((beta_vae_config, {}), (cvae_config, {"architecture": "conv"}),
                          (cgan_config, {"architecture": "dcgan"}), (classifier_config, {})):
      config = module.get_config()
      config.data.name = "synthetic30"
      config.model.update(model)
      with pytest.raises(errors.ConfigError, match="30×30 images of synthetic30: its "
                         "convolutional networks need a height and width divisible by 4"):
        validation.validate_config(config)
    config = cvae_config.get_config()  # the MLPs take any shape
    config.data.name = "synthetic30"
    validation.validate_config(config)
  finally:
    catalog.unregister("synthetic30")


# --- networks, samples and figures of every family -----------------------------------------

@pytest.mark.parametrize("module, architectures", [
    (beta_vae_config, ("conv", "mlp")), (cvae_config, ("mlp", "mlp_bn", "conv")),
    (cgan_config, ("mlp", "mlp_large", "dcgan"))])
def test_every_architecture_samples_images_of_the_data_set(module, architectures, data_dir):
  for architecture in architectures:
    config = _config(module, data_dir, "", architecture=architecture, hidden=16,
                     channels=(8, 16))
    task = tasks.get_task(config, None)
    assert task.image_shape == SHAPE
    state = task.init_state(jax.random.key(0))
    labels = jnp.arange(3) % NUM_CLASSES
    images = task.sample(state, jnp.zeros((3, task.latent_dim())), labels, labels % 2)
    assert images.shape == (3, 32, 32, 1), architecture


def test_the_classifier_takes_the_data_set_shape(data_dir):
  config = classifier_config.get_config()
  config.data.name = NAME
  config.model.channels = (8, 16)
  task = tasks.get_task(config, None)
  state = task.init_state(jax.random.key(0))
  assert task.predict(state, jnp.zeros((2, *SHAPE))).shape == (2,)


def test_figures_take_the_size_from_the_arrays(tmp_path):
  assert figures.tile(np.zeros((5, 32, 32, 1)), 3).shape == (2 * 33 + 1, 3 * 33 + 1)
  assert figures.tile(np.zeros((2, 32, 24)), 2).shape == (33 + 1, 2 * 25 + 1)
  with pytest.raises(ValueError, match=r"\[4, 1024\] are not allowed"):
    figures.tile(np.zeros((4, 1024)), 2)
  assert inpainting.central_patch(32, 32) == (slice(11, 21), slice(11, 21))
  assert inpainting.central_patch(28, 28) == inpainting.PATCH == (slice(9, 19), slice(9, 19))
  masked = inpainting.mask_patch(np.ones((1, 32, 32, 1)))
  assert masked.sum() == 32 * 32 - 100 and masked[0, 11:21, 11:21].max() == 0


# --- end to end: train, evaluate, draw, generate -------------------------------------------

@pytest.mark.parametrize("module, architecture", [
    (beta_vae_config, "conv"), (cvae_config, "mlp"), (cvae_config, "conv"),
    (cgan_config, "dcgan")])
def test_trains_evaluates_and_generates_32x32(module, architecture, data_dir, tmp_path):
  config = _config(module, data_dir, str(tmp_path / "cache"), architecture=architecture,
                   hidden=16, channels=(8, 16))
  cas = config.model.name == "cvae" and architecture == "mlp"
  if cas:  # one CAS: the recipe's classifier on 32 × 32 samples and real images
    config.eval.cas_epochs = 1
  workdir = tmp_path / "run"
  summary = experiment.train_and_evaluate(config, str(workdir))
  assert summary["step"] == 256 // 32
  assert all(np.isfinite(v) for v in summary.values())
  assert (workdir / "report.html").exists()
  metrics = json.loads((workdir / "eval" / "metrics.json").read_text())["metrics"]
  assert ("cas" in metrics and 0 <= metrics["cas"] <= 1) == cas, sorted(metrics)
  figure = "class_style_samples.png" if config.model.name != "beta_vae" else "prior_samples.png"
  with Image.open(workdir / "figures" / figure) as image:
    assert image.format == "PNG"
  if config.model.name == "beta_vae":
    assert (workdir / "eval" / "inpainting.png").exists()
    assert (workdir / "eval" / "traversals.png").exists()

  run = generate.load_run(str(workdir))
  images = generate.generate(run, 1, 1, 5, jax.random.key(0))
  assert images.shape == (5, 32, 32, 1) and 0 <= images.min() and images.max() <= 1
  if config.model.name != "beta_vae":  # the class × style sheet of 32 × 32 samples
    fixed = run.task.figure_inputs(*loading.load_datasets(config.data), jax.random.key(0))
    assert run.task.class_style_samples(run.state, fixed).shape == (NUM_CLASSES, 2, 1, 32, 32, 1)
