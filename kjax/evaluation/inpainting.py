"""Inpainting (seed 004 §2.1, "Variational autoencoders on Kuzushiji"): the central 10×10
pixels of each eval image are zeroed, the masked image is encoded and decoded, and the
patch of the decoding is compared with the original."""

from __future__ import annotations

import jax
import numpy as np

from kjax import figures
from kjax import sharding
from kjax.evaluation import base
from kjax.evaluation import style as kstyle_eval

PATCH = (slice(9, 19), slice(9, 19))  # the central 10×10 pixels of a 28×28 image

METRIC_DOCS = {
    "inpainting_patch_mse": "MSE per pixel in the zeroed central 10x10 patch after "
                            "encoding and decoding the masked image",
    "masked_patch_mse": "the same MSE for the masked input itself (the patch left at 0)",
    "inpainting_class_accuracy": "domain classifier's accuracy on the inpainted images",
}


def inpainting(run: base.Run) -> base.Output:
  """``inpainting_patch_mse`` and ``masked_patch_mse`` over the eval split, with an
  evaluator ``inpainting_class_accuracy``, and the figure ``inpainting.png``."""
  masked = run.x_eval.copy()
  masked[:, PATCH[0], PATCH[1]] = 0.0
  encode = sharding.split_batch(run.task.encode, (1, 2, 3))
  z = base.batched(lambda a, b, c: encode(run.state, a, b, c), masked, run.labels, run.styles)
  inpainted = run.decode(z, run.labels, run.styles)
  patch = (slice(None), *PATCH)
  out = base.Output(metrics={
      "inpainting_patch_mse": float(np.mean(np.square(inpainted[patch] - run.x_eval[patch]))),
      "masked_patch_mse": float(np.mean(np.square(run.x_eval[patch])))})
  if run.evaluator is not None:
    out.metrics["inpainting_class_accuracy"] = kstyle_eval.class_accuracy(
        run.evaluator.predict(inpainted), run.labels, run.info.num_classes)[0]
  n = min(10, len(run.eval_ds))
  out.figures = run.relative(figures.plot_inpainting(
      run.figure_path("inpainting.png"), run.x_eval[:n], masked[:n], inpainted[:n],
      f"Inpainting the central 10×10 pixels (eval images; seed 004 §2.1)\n{run.caption}"))
  return out
