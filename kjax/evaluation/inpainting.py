"""Inpainting, as in Ahmed (2025), "Generative AI Theory & Applications Report 1: Variational
Autoencoders", §2.1 and Appendix C: the central 10×10 pixels of each eval image are zeroed,
the masked image is encoded and decoded, and the patch of the decoding is compared with the
original. On images of another size (the data set's ``image_shape``) the patch is the
central 10×10 pixels of that size."""

from __future__ import annotations

import numpy as np

from kjax import eval_figures
from kjax import sharding
from kjax.evaluation import base
from kjax.evaluation import style as kstyle_eval

PATCH_SIZE = 10


def central_patch(height: int, width: int, size: int = PATCH_SIZE) -> tuple[slice, slice]:
  """``(rows, columns)`` slices of the central ``size`` × ``size`` pixels of an image of
  ``height`` × ``width`` (rows and columns 9–18 of a 28×28 image; 11–20 of a 32×32).

  Raises:
    ValueError: the image is smaller than the patch.
  """
  if height < size or width < size:
    raise ValueError(f"images of {height}×{width} pixels are not allowed: expected at least "
                     f"{size}×{size} for the inpainting patch")
  top, left = (height - size) // 2, (width - size) // 2
  return slice(top, top + size), slice(left, left + size)


# The central 10×10 pixels of a 28×28 image (Ahmed zeroes rows and columns 10–19, one pixel
# lower and to the right; 9–18 is the centred patch).
PATCH = central_patch(28, 28)

METRIC_DOCS = {
    "inpainting_patch_mse": "MSE per pixel in the zeroed central 10x10 patch after "
                            "encoding and decoding the masked image",
    "masked_patch_mse": "the same MSE for the masked input itself (the patch left at 0)",
    "inpainting_class_accuracy": "domain classifier's accuracy on the full reconstructions "
                                 "of the masked images",
}


def mask_patch(images: np.ndarray, patch: tuple[slice, slice] | None = None) -> np.ndarray:
  """A copy of float ``[N, H, W(, 1)]`` images with the pixels of ``patch`` (rows, columns;
  None: ``central_patch(H, W)``) set to 0, the background."""
  if patch is None:
    patch = central_patch(*np.shape(images)[1:3])
  masked = np.array(images, copy=True)
  masked[:, patch[0], patch[1]] = 0.0
  return masked


def fill_patch(original: np.ndarray, reconstruction: np.ndarray,
               patch: tuple[slice, slice] | None = None) -> np.ndarray:
  """The masked image with only the patch filled in by the model.

  Args:
    original: float ``[N, H, W(, 1)]``, the images before masking.
    reconstruction: the model's decoding of the masked images, the same shape.
    patch: ``(rows, columns)`` slices of the masked patch (None: ``central_patch(H, W)``).

  Returns:
    A new array of ``original``'s shape and dtype: ``original`` outside the patch,
    ``reconstruction`` inside it.

  Raises:
    ValueError: if the two shapes differ.
  """
  original, reconstruction = np.asarray(original), np.asarray(reconstruction)
  if original.shape != reconstruction.shape:
    raise ValueError(f"original {original.shape} and reconstruction {reconstruction.shape} "
                     "differ in shape")
  if patch is None:
    patch = central_patch(*original.shape[1:3])
  filled = original.copy()
  filled[:, patch[0], patch[1]] = reconstruction[:, patch[0], patch[1]]
  return filled


def inpainting(run: base.Run) -> base.Output:
  """``inpainting_patch_mse`` and ``masked_patch_mse`` over the eval split, with an
  evaluator ``inpainting_class_accuracy``, and the figure ``inpainting.png`` (original,
  masked, patch filled in, full reconstruction)."""
  rows, cols = central_patch(*run.x_eval.shape[1:3])
  masked = mask_patch(run.x_eval, (rows, cols))
  encode = sharding.split_batch(run.task.encode, (1, 2, 3))
  z = base.batched(lambda a, b, c: encode(run.state, a, b, c), masked, run.labels, run.styles)
  inpainted = run.decode(z, run.labels, run.styles)
  patch = (slice(None), rows, cols)
  out = base.Output(metrics={
      "inpainting_patch_mse": float(np.mean(np.square(inpainted[patch] - run.x_eval[patch]))),
      "masked_patch_mse": float(np.mean(np.square(run.x_eval[patch])))})
  if run.evaluator is not None:
    out.metrics["inpainting_class_accuracy"] = kstyle_eval.class_accuracy(
        run.evaluator.predict(inpainted), run.labels, run.info.num_classes)[0]
  n = min(10, len(run.eval_ds))
  original = run.x_eval[:n]
  out.figures = run.relative(eval_figures.plot_inpainting(
      run.figure_path("inpainting.png"), original, masked[:n],
      fill_patch(original, inpainted[:n], (rows, cols)), inpainted[:n],
      f"Inpainting the central 10×10 pixels of eval images, as in Ahmed (2025), §2.1\n"
      f"{run.caption}", patch=(rows, cols)))
  return out
