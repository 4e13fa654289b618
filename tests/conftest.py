"""Shared fixtures: the real KMNIST/MNIST test splits in ../shared/data and tiny configs."""

import os

import pytest

from configs import beta_vae

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


@pytest.fixture(scope="session")
def kmnist_dir() -> str:
  """Folder with the official KMNIST test files (checked out beside the repo)."""
  path = os.path.join(SHARED_DATA, "kmnist")
  assert os.path.isfile(os.path.join(path, "t10k-images-idx3-ubyte.gz")), (
      f"the tests read the real KMNIST test split from {path}")
  return path


@pytest.fixture(scope="session")
def mnist_dir() -> str:
  path = os.path.join(SHARED_DATA, "mnist")
  assert os.path.isfile(os.path.join(path, "t10k-images-idx3-ubyte.gz")), path
  return path


@pytest.fixture
def tiny_config(kmnist_dir, tmp_path):
  """The β-VAE config shrunk to seconds: 256 real KMNIST images, batch 32, 2 epochs."""
  config = beta_vae.get_config()
  config.data.data_dir = kmnist_dir
  config.data.train_split = "test[:256]"
  config.data.eval_split = "test[9800:]"
  config.data.cache_dir = str(tmp_path / "cache")
  config.model.channels = (8, 16)
  config.train.num_epochs = 2
  config.train.batch_size = 32
  config.train.eval_batch_size = 128
  config.train.log_every_steps = 4
  config.train.checkpoint_every_steps = 4
  config.figures.grid_size = 4
  return config
