"""The figures of kjax runs, written as PNG and GIF files.

They redraw those of the source documents (Islam's "Beyond Pixels" β-VAE tutorial, the
"Variational Autoencoder" project post of 2023, Shyam 2024, Ahmed 2025) and add the
evaluation's own.

Every function takes plain numpy arrays (images as float in [0, 1]), so it can be tested
without a model; ``make_vae_figures`` wires them to a trained model. Images are
``[N, H, W]`` or ``[N, H, W, 1]`` of any size (the data set's ``image_shape``): a figure
reads H and W from the arrays it draws. The evaluation's own figures are in
``kjax.eval_figures``.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib_fontja  # noqa: E402,F401  (IPAexGothic: class labels in kana)
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from kjax import files  # noqa: E402
from kjax.data import catalog  # noqa: E402


def grey(images: np.ndarray) -> np.ndarray:
  """Images ``[N, H, W]`` or ``[N, H, W, 1]`` → ``[N, H, W]`` (the same values).

  Raises:
    ValueError: another shape (one line naming it).
  """
  images = np.asarray(images)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim != 3:
    raise ValueError(f"images of shape {list(images.shape)} are not allowed: expected grey "
                     "images [N, H, W] or [N, H, W, 1]")
  return images


def tile(images: np.ndarray, ncols: int, pad: int = 1) -> np.ndarray:
  """Tiles float ``[N, H, W(, 1)]`` images in [0, 1] into one uint8 image of
  ``[rows · (H + pad) + pad, ncols · (W + pad) + pad]``.

  Rows are filled left to right; ``pad`` white pixels separate the tiles.
  """
  images = grey(images)
  height, width = images.shape[1:]
  nrows = -(-len(images) // ncols)
  h, w = height + pad, width + pad
  canvas = np.ones((nrows * h + pad, ncols * w + pad), np.float32)
  for i, image in enumerate(images):
    r, c = divmod(i, ncols)
    canvas[pad + r * h: pad + r * h + height, pad + c * w: pad + c * w + width] = image
  return (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)


def tile_centres(count: int, size: int, pad: int = 1) -> list[float]:
  """Pixel coordinates of the centres of ``count`` tiles of ``size`` pixels along one
  axis of a ``tile`` canvas (tick positions: ``14.5 + 29 k`` for 28-pixel tiles)."""
  return [pad + (size + pad) * k + size / 2 - 0.5 for k in range(count)]


def _save(fig, path: str) -> str:
  """Writes ``fig`` to ``path`` atomically (``kjax.files.save_figure``) and closes it.

  Raises:
    WriteError: the file cannot be written; the message names ``path`` and the OS error.
  """
  try:
    return files.save_figure(fig, path, dpi=110, bbox_inches="tight")
  finally:
    plt.close(fig)


def class_colors(num_classes: int) -> np.ndarray:
  """One RGBA colour per class: tab10 up to 10 classes, else evenly spaced hues."""
  if num_classes <= 10:
    return plt.get_cmap("tab10")(np.arange(num_classes))
  return plt.get_cmap("hsv")(np.linspace(0, 1, num_classes, endpoint=False))


def project_2d(z: np.ndarray) -> tuple[np.ndarray, str]:
  """``[N, D]`` latents → ``([N, 2], axis-label prefix)``: as is for D = 2, PCA for D > 2.

  For D = 1 the second coordinate is zero (the caller spreads points by class).
  """
  if z.shape[1] == 2:
    return z, "z"
  if z.shape[1] == 1:
    return np.concatenate([z, np.zeros_like(z)], 1), "z"
  centred = z - z.mean(0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  return centred @ vt[:2].T, "PCA component"


def plot_latent_manifold(path: str, z_mean: np.ndarray, labels: np.ndarray,
                         info: catalog.DatasetInfo, title: str) -> str:
  """Eval-set ``z_mean`` (float ``[N, D]``) scattered and coloured by class (Islam's
  "Beyond Pixels" β-VAE tutorial, Fig. 1).

  The legend gives each class's character. D > 2 is shown as its first two principal
  components; D = 1 as z against the class.
  """
  xy, axis = project_2d(z_mean)
  if z_mean.shape[1] == 1:
    xy = np.stack([z_mean[:, 0], labels + np.random.default_rng(0).uniform(-0.3, 0.3, len(labels))], 1)
  fig, ax = plt.subplots(figsize=(8, 7))
  for k, color in enumerate(class_colors(info.num_classes)):
    sel = labels == k
    ax.scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.6, color=color, label=info.label(k))
  ax.set_xlabel(f"{axis} 1" if z_mean.shape[1] != 1 else "z")
  ax.set_ylabel(f"{axis} 2" if z_mean.shape[1] != 1 else "class (jittered)")
  ax.set_title(title)
  ax.legend(markerscale=4, fontsize=10, loc="center left", bbox_to_anchor=(1.01, 0.5),
            title="class")
  return _save(fig, path)


def plot_image_grid(path: str, images: np.ndarray, ncols: int, title: str,
                    row_labels: Sequence[str] | None = None) -> str:
  """A titled grid of float ``[N, H, W(, 1)]`` images; optional labels per row."""
  images = grey(images)
  grid = tile(images, ncols)
  nrows = -(-len(images) // ncols)
  fig, ax = plt.subplots(figsize=(max(4, ncols * 0.55), max(2, nrows * 0.55 + 0.6)))
  ax.imshow(grid, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
  ax.set_title(title)
  ax.set_xticks([])
  if row_labels:
    ax.set_yticks(tile_centres(len(row_labels), images.shape[1]))
    ax.set_yticklabels(row_labels)
  else:
    ax.set_yticks([])
  return _save(fig, path)


def plot_style_examples(path: str, images: np.ndarray, labels: np.ndarray, styles: np.ndarray,
                        info: catalog.DatasetInfo, per_style: int = 4, title: str = "") -> str:
  """Thin and thick examples of every class side by side (Shyam 2024, Figs. 6–7).

  Args:
    images: uint8 ``[N, H, W(, 1)]``; labels: int ``[N]``; styles: int ``[N]`` (0 thin,
      1 thick, ``kjax.data.style``).
    per_style: examples of each style per class (the first ones in the split); a class
      with fewer leaves blank tiles.
  """
  x = grey(images).astype(np.float32) / 255.0
  h, w = x.shape[1:]
  rows = []
  for k in range(info.num_classes):
    for s in (0, 1):
      picked = x[(labels == k) & (styles == s)][:per_style]
      rows.append(np.concatenate([picked, np.zeros((per_style - len(picked), h, w))]))
  ncols = 2 * per_style
  fig_w = max(4.0, ncols * 0.5 + 1.5)
  fig, ax = plt.subplots(figsize=(fig_w, info.num_classes * 0.5 + 0.8))
  ax.imshow(tile(np.concatenate(rows), ncols), cmap="gray_r", vmin=0, vmax=255,
            interpolation="nearest")
  _style_columns(ax, per_style, w)
  ax.set_yticks(tile_centres(info.num_classes, h))
  ax.set_yticklabels([info.label(k) for k in range(info.num_classes)])
  ax.set_title(title or "Stroke style: foreground pixels below / above the class median")
  return _save(fig, path)


def _style_columns(ax, per_style: int, width: int) -> None:
  """Marks the thin | thick halves of a ``tile`` of ``2 · per_style`` columns of tiles
  ``width`` pixels wide: a red line between them and a label above each."""
  span = per_style * (width + 1)
  ax.axvline(span + 0.5, color="tab:red", lw=1.5)
  ax.set_xticks([span / 2, span * 1.5])
  ax.set_xticklabels(["thin (style 0)", "thick (style 1)"])
  ax.xaxis.tick_top()


def plot_latent_grid(path: str, images: np.ndarray, coords: np.ndarray, title: str) -> str:
  """Decoded 2-D latent grid (the Keras example's latent-space plot).

  Args:
    images: float ``[G * G, H, W(, 1)]``, row-major from the top-left (high z2, low z1).
    coords: float ``[G]``, the grid's values along each axis (ascending).
  """
  g = len(coords)
  h, w = grey(images).shape[1:]
  grid = tile(images, g, pad=0)
  fig, ax = plt.subplots(figsize=(9, 9))
  ax.imshow(grid, cmap="gray_r", extent=(0, g * w, 0, g * h), interpolation="nearest")
  step = max(1, g // 7)
  ax.set_xticks((w // 2 + w * np.arange(g))[::step])
  ax.set_xticklabels([f"{c:.2f}" for c in coords[::step]])
  ax.set_yticks((h // 2 + h * np.arange(g))[::step])
  ax.set_yticklabels([f"{c:.2f}" for c in coords[::step]])
  ax.set_xlabel("z1")
  ax.set_ylabel("z2")
  ax.set_title(title)
  return _save(fig, path)


def save_gif(path: str, frames: np.ndarray, scale: int = 4, duration_ms: int = 120,
             bounce: bool = True) -> str:
  """Writes float ``[T, H, W]`` frames in [0, 1] as a looping GIF, each pixel ``scale``² wide.

  ``bounce`` plays the frames forward then backward. Written atomically; raises
  ``WriteError`` (naming ``path``) when it cannot be.
  """
  frames = np.asarray(frames)
  if bounce:
    frames = np.concatenate([frames, frames[-2:0:-1]])
  images = [Image.fromarray((255 - np.clip(f, 0, 1) * 255).round().astype(np.uint8))
            .resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in frames]
  return files.save_image(images[0], path, save_all=True, append_images=images[1:],
                          duration=duration_ms, loop=0)


VAE_LOSS_PANELS = (("loss", "nelbo"), ("rec",), ("kl",))


def plot_loss_curves(path: str, history: Sequence[dict], title: str,
                     panels: Sequence[Sequence[str]] = VAE_LOSS_PANELS) -> str:
  """Train (solid) and eval (dashed) metrics against epoch, one panel per group of names.

  Args:
    history: ``metrics.jsonl`` rows (``epoch``, ``train/<name>``, ``eval/<name>``).
    panels: metric names per panel; the default is the VAE's (nats per image), a GAN's
      is ``(('d_loss', 'g_loss'), ('d_real', 'd_fake'))``. Names absent from every row
      are skipped.
  """
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
  epochs = [r["epoch"] for r in history]
  nats = {"iwae_nll", *VAE_LOSS_PANELS[0], *VAE_LOSS_PANELS[1], *VAE_LOSS_PANELS[2]}
  for ax, names in zip(axes[0], panels):
    for name in names:
      for split, style in (("train", "-"), ("eval", "--")):
        key = f"{split}/{name}"
        if all(key in r for r in history):
          ax.plot(epochs, [r[key] for r in history], style, marker="o", ms=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image" if set(names) <= nats else "batch mean")
    ax.set_title(" and ".join(names))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend()
  fig.suptitle(title, y=1.04)
  return _save(fig, path)


def plot_class_style_sheet(path: str, samples: np.ndarray, info: catalog.DatasetInfo,
                           title: str) -> str:
  """Generated samples of every class in both styles (Shyam 2024, Figs. 9–11, 15–18, all
  at once).

  Args:
    samples: float ``[C, 2, n, H, W(, 1)]`` in [0, 1]: class × (thin, thick) × n samples.
      Column j of both halves should share its noise, so that only the style differs.
    info: class names for the row labels (the character and its romaji).
  """
  c, _, n = samples.shape[:3]
  images = grey(samples.reshape(c * 2 * n, *samples.shape[3:]))
  h, w = images.shape[1:]
  fig, ax = plt.subplots(figsize=(max(4.0, 2 * n * 0.5 + 1.5), c * 0.5 + 0.9))
  ax.imshow(tile(images, 2 * n), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
  _style_columns(ax, n, w)
  ax.set_yticks(tile_centres(c, h))
  ax.set_yticklabels([info.label(k) for k in range(c)])
  ax.set_title(title)
  return _save(fig, path)


def plot_real_vs_generated(path: str, real: np.ndarray, generated: np.ndarray, title: str,
                           caption: str, ncols: int = 8, scale: int = 2) -> str:
  """Real images beside generated ones for the same labels (Shyam 2024, Figs. 12–14), a
  PNG of ``scale``-times enlarged grids with the title above and the caption below.

  Drawn with PIL, not matplotlib: the loop draws one every ``progress_every_epochs``
  epochs, and matplotlib took 130 ms a figure against 7 ms here (issue 27: per-epoch
  work ≤ 15% of the CVAE's 0.1 s epochs).

  Args:
    real, generated: float ``[N, H, W(, 1)]`` in [0, 1], the same N.
    caption: the hyper-parameters, written under the panels (Shyam 2024, §4.3.4).

  Raises:
    WriteError: the file cannot be written (``kjax.files.save_image``).
  """
  from PIL import ImageDraw, ImageFont  # noqa: PLC0415

  font = ImageFont.load_default(size=14)
  grids = [Image.fromarray(255 - tile(images, ncols)) for images in (real, generated)]
  grids = [g.resize((scale * g.width, scale * g.height), Image.NEAREST) for g in grids]
  width, height, gap, line = grids[0].width, grids[0].height, 24, 20
  canvas = Image.new("L", (2 * width + 3 * gap, height + 4 * line + 2 * gap), 255)
  draw = ImageDraw.Draw(canvas)
  draw.text((gap, gap // 2), title, font=font, fill=0)
  for k, (grid, name) in enumerate(zip(grids, ("Real images", "Generated images"))):
    x = gap + k * (width + gap)
    draw.text((x, gap // 2 + 1.5 * line), name, font=font, fill=0)
    canvas.paste(grid, (x, gap // 2 + 3 * line))
  draw.text((gap, height + 3 * line + gap), caption, font=font, fill=0)
  return files.save_image(canvas, path, compress_level=1)


def normal_quantile_grid(size: int) -> np.ndarray:
  """float32 ``[size]``: the N(0, 1) quantiles of ``linspace(0.05, 0.95, size)``, the axis
  of a decoded 2-D latent grid (Kingma & Welling 2014, Fig. 4)."""
  from statistics import NormalDist  # noqa: PLC0415
  return np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, size)], np.float32)


def make_vae_figures(fig_dir: str, *, encode: Callable[[np.ndarray], np.ndarray],
                     decode: Callable[[np.ndarray], np.ndarray], eval_images: np.ndarray,
                     eval_labels: np.ndarray, info: catalog.DatasetInfo, latent_dim: int,
                     history: Sequence[dict], prior_z: np.ndarray, config,
                     caption: str) -> list[str]:
  """Writes every β-VAE figure to ``fig_dir`` and returns the paths.

  Args:
    encode: float ``[B, H, W, 1]`` in [0, 1] → ``z_mean`` float ``[B, D]``.
    decode: float ``[B, D]`` → decoder mean float ``[B, H, W, 1]`` in [0, 1].
    eval_images: uint8 ``[N, H, W, 1]``; eval_labels: int ``[N]``.
    prior_z: float ``[64, D]`` fixed draws from N(0, I) for the samples figure.
    history: ``metrics.jsonl`` rows; config: the run's config (``figures`` section);
    caption: the run's description, appended to titles.
  """
  files.makedirs(fig_dir)
  x = eval_images.astype(np.float32) / 255.0
  z_mean = np.concatenate([encode(x[i:i + 1000]) for i in range(0, len(x), 1000)])
  paths = [plot_latent_manifold(os.path.join(fig_dir, "latent_manifold.png"), z_mean,
                                eval_labels, info,
                                f"Eval-set z_mean by class ({len(x)} images)\n{caption}")]
  if latent_dim == 2:
    coords = normal_quantile_grid(config.figures.grid_size)
    zz = np.stack(np.meshgrid(coords, coords[::-1]), -1).reshape(-1, 2)
    paths.append(plot_latent_grid(os.path.join(fig_dir, "latent_grid.png"),
                                  decode(zz.astype(np.float32)), coords,
                                  f"Decoded latent grid (N(0,1) quantiles 5%-95%)\n{caption}"))
  a, b = config.figures.interpolate_classes
  steps = config.figures.interpolation_steps
  if np.any(eval_labels == a) and np.any(eval_labels == b):
    za, zb = z_mean[eval_labels == a].mean(0), z_mean[eval_labels == b].mean(0)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    frames = decode(((1 - t) * za + t * zb).astype(np.float32))[..., 0]
    paths.append(plot_image_grid(
        os.path.join(fig_dir, "interpolation.png"), frames, steps,
        f"Latent arithmetic: mean z of class {info.label(a)} → class {info.label(b)}\n{caption}"))
    paths.append(save_gif(os.path.join(fig_dir, "interpolation.gif"), frames))
  n = 16
  recon = decode(encode(x[:n]))
  paths.append(plot_image_grid(
      os.path.join(fig_dir, "reconstructions.png"), np.concatenate([x[:n], recon]), n,
      f"Eval images (top) and reconstructions from z_mean (bottom)\n{caption}",
      row_labels=["original", "reconstruction"]))
  paths.append(plot_image_grid(os.path.join(fig_dir, "prior_samples.png"), decode(prior_z), 8,
                               f"Decoder means of 64 draws z ~ N(0, I)\n{caption}"))
  if history:
    paths.append(plot_loss_curves(os.path.join(fig_dir, "loss_curves.png"), history,
                                  f"Loss curves\n{caption}"))
  return paths


def save_training_gif(path: str, frames: Sequence[np.ndarray], epochs: Sequence[int],
                      scale: int = 1, duration_ms: int = 200) -> str:
  """A GIF of uint8 ``[H, W]`` tiles (ink = high values), one frame per epoch, each with
  its epoch written in the top-left corner; the last frame is held for a second. Grey
  levels are quantised to 16 to keep the file small. Written atomically; raises
  ``WriteError`` (naming ``path``) when it cannot be.
  """
  from PIL import ImageDraw  # noqa: PLC0415

  images = []
  for frame, epoch in zip(frames, epochs):
    # 16 grey levels: GIF's LZW compresses smooth decoder means poorly at 256.
    image = Image.fromarray(255 - (np.asarray(frame, np.uint8) // 16 * 17))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    canvas = Image.new("L", (image.width, image.height + 14), 255)
    canvas.paste(image, (0, 14))
    ImageDraw.Draw(canvas).text((2, 1), f"epoch {epoch}", fill=0)
    images.append(canvas)
  durations = [duration_ms] * (len(images) - 1) + [1000]
  return files.save_image(images[0], path, save_all=True, append_images=images[1:],
                          duration=durations, loop=0)
