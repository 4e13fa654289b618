"""Figures from plain arrays: every file is written, for 1-, 2- and 10-D latents."""

import os

import numpy as np
import pytest
from PIL import Image

from configs import beta_vae
from kjax import figures
from kjax.data import catalog


def test_tile_layout():
  images = np.zeros((5, 28, 28, 1), np.float32)
  images[4] = 1.0
  grid = figures.tile(images, ncols=3)
  assert grid.shape == (2 * 29 + 1, 3 * 29 + 1) and grid.dtype == np.uint8
  assert grid[30:58, 30:58].min() == 255 and grid[1:29, 1:29].max() == 0


def test_gif_has_every_frame(tmp_path):
  frames = np.linspace(0, 1, 6)[:, None, None] * np.ones((6, 28, 28))
  path = figures.save_gif(str(tmp_path / "a.gif"), frames, scale=2, bounce=False)
  with Image.open(path) as gif:
    assert gif.n_frames == 6 and gif.size == (56, 56)


@pytest.mark.parametrize("latent_dim", [1, 2, 10])
def test_make_vae_figures(tmp_path, latent_dim):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (200, 28, 28, 1), dtype=np.uint8)
  labels = np.arange(200) % 10
  projection = rng.normal(size=(784, latent_dim)).astype(np.float32) / 28
  encode = lambda x: x.reshape(len(x), -1) @ projection
  decode = lambda z: np.full((len(z), 28, 28, 1), 0.5, np.float32) + 0 * z[:, :1, None, None]
  history = [{"epoch": e, "step": 10 * e, "train/loss": 300.0 - e, "eval/loss": 301.0 - e,
              "train/nelbo": 299.0, "eval/nelbo": 300.0, "train/rec": 290.0,
              "eval/rec": 291.0, "train/kl": 9.0, "eval/kl": 9.0} for e in (1, 2)]
  paths = figures.make_vae_figures(
      str(tmp_path), encode=encode, decode=decode, eval_images=images, eval_labels=labels,
      info=catalog.KMNIST, latent_dim=latent_dim, history=history,
      prior_z=rng.normal(size=(64, latent_dim)).astype(np.float32),
      config=beta_vae.get_config(), caption="test")
  names = {p.rsplit("/", 1)[-1] for p in paths}
  expected = {"latent_manifold.png", "interpolation.png", "interpolation.gif",
              "reconstructions.png", "prior_samples.png", "loss_curves.png"}
  assert names == (expected | {"latent_grid.png"} if latent_dim == 2 else expected)
  for path in paths:
    assert (tmp_path / path.rsplit("/", 1)[-1]).stat().st_size > 100


def test_style_examples_figure(tmp_path):
  from kjax.data import style
  images = np.zeros((98, 28, 28, 1), np.uint8)
  for i in range(98):
    images[i, 5:5 + 2 + i % 7, 4:24] = 255  # bars of 2..8 rows
  labels = np.arange(98) % 49
  counts = style.foreground_pixel_count(images)
  styles = style.style_labels(counts, labels, style.class_thresholds(counts, labels, 49))
  path = figures.plot_style_examples(str(tmp_path / "s.png"), images, labels, styles,
                                     catalog.K49, per_style=2)
  with Image.open(path) as image:
    assert image.size[1] > image.size[0]  # 49 rows


def test_class_style_sheet_and_progress_figures(tmp_path):
  rng = np.random.default_rng(0)
  info = catalog.get_dataset_info("k49")
  path = figures.plot_class_style_sheet(str(tmp_path / "sheet.png"),
                                        rng.uniform(size=(49, 2, 3, 28, 28, 1)), info, "sheet")
  assert os.path.getsize(path) > 20_000
  path = figures.plot_real_vs_generated(str(tmp_path / "progress.png"),
                                        rng.uniform(size=(16, 28, 28, 1)),
                                        rng.uniform(size=(16, 28, 28, 1)), "epoch 3",
                                        "Learning Rate: 0.0001, Latent Dim: 64")
  with Image.open(path) as image:  # two 8-wide grids of 2× tiles side by side
    assert image.size[0] > 2 * 8 * 2 * 28 and image.size[1] > 2 * 2 * 2 * 28
    pixels = np.asarray(image)
  assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 100
  history = [{"epoch": e, "train/d_loss": 0.5, "train/g_loss": 1.0 + e, "eval/d_loss": 0.6}
             for e in (1, 2)]
  path = figures.plot_loss_curves(str(tmp_path / "gan.png"), history, "GAN",
                                  panels=(("d_loss", "g_loss"), ("d_real", "d_fake")))
  assert os.path.getsize(path) > 10_000
