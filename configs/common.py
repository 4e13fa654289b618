"""Config sections shared by every experiment file in ``configs/``."""

import ml_collections


def data(name: str) -> ml_collections.ConfigDict:
  """``config.data`` for the data set ``name`` (``kmnist`` | ``k49`` | ``mnist``)."""
  section = ml_collections.ConfigDict()
  section.name = name
  section.data_dir = ""          # folder of official files; empty: TFDS
  section.tfds_data_dir = ""     # where TFDS prepares data; empty: TFDS's default
  section.train_split = "train"
  section.eval_split = "test"
  section.verify_checksums = True
  section.style_pixel_threshold = 0   # foreground: pixel value > this (0..254)
  section.style_reduction = "median"  # or "mean" (seed 003, Architecture 1)
  section.cache_dir = ""              # empty: $KJAX_CACHE_DIR or ~/.cache/kjax
  return section


def train(num_epochs: int, batch_size: int, log_every_steps: int,
          checkpoint_every_steps: int) -> ml_collections.ConfigDict:
  """``config.train``: the loop's schedule, evaluation batch and checkpoints."""
  section = ml_collections.ConfigDict()
  section.num_epochs = num_epochs
  section.batch_size = batch_size
  section.eval_batch_size = 1000
  section.steps_per_call = 1  # train steps per compiled call (lax.scan); see benchmarks/
  section.log_every_steps = log_every_steps
  section.checkpoint_every_steps = checkpoint_every_steps
  section.keep_checkpoints = 3
  return section
