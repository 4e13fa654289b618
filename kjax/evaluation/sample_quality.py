"""Sample quality in the domain evaluator's features: Fréchet distance (Heusel et al. 2017)
and KID (Bińkowski et al. 2018) against the real eval images, with the real train images
as a reference floor; precision and recall of k-NN manifolds (Kynkäänniemi et al. 2019);
density and coverage (Naeem et al. 2020); and, for conditional models, the evaluator's
class accuracy on samples (per class and balanced). The samples' latents come from
``config.eval.sampler`` (``base.Run.generated``); with the ex-post mixture (``'gmm'``,
``kjax.evaluation.ex_post``) the prior's numbers are reported beside, as ``<metric>_prior``."""

from __future__ import annotations

import functools

import numpy as np

from kjax import metrics as kmetrics
from kjax.evaluation import base
from kjax.evaluation import ex_post
from kjax.evaluation import style as kstyle_eval

METRIC_DOCS = {
    "fd": "Frechet distance, generated vs real eval images, evaluator features",
    "kid": "KID (unbiased MMD^2, cubic kernel), generated vs real eval images",
    "kid_std": "standard deviation of KID over its subsets",
    "fd_real_train_vs_eval": "FD between real train and real eval images (reference floor)",
    "kid_real_train_vs_eval": "KID between real train and real eval images (reference)",
    "precision": "share of samples inside the k-NN ball of a real eval image's features "
                 "(Kynkaanniemi et al. 2019)",
    "recall": "share of real eval images inside the k-NN ball of a sample",
    "density": "real k-NN balls holding a sample, per sample, / k (Naeem et al. 2020; ~1 for "
               "one distribution)",
    "coverage": "share of real eval images whose k-NN ball holds a sample (Naeem et al. 2020)",
    "precision_real_train_vs_eval": "precision of real train images against real eval (reference)",
    "recall_real_train_vs_eval": "recall of real train images against real eval (reference)",
    "density_real_train_vs_eval": "density of real train images against real eval (reference)",
    "coverage_real_train_vs_eval": "coverage of real train images against real eval (reference)",
    "class_accuracy": "evaluator's accuracy on samples w.r.t. the requested class",
    "class_balanced_accuracy": "mean over classes of that accuracy (balanced)",
    "class_accuracy_per_class": "that accuracy for each class, in class order",
}
# The metrics reported a second time, for prior samples, when eval.sampler is 'gmm'.
PRIOR_COMPARISON = ("fd", "kid", "precision", "recall", "density", "coverage", "class_accuracy")
METRIC_DOCS.update({f"{name}_prior": f"{name} of samples from the prior N(0, I), reported "
                    "beside the ex-post mixture's when eval.sampler='gmm'"
                    for name in PRIOR_COMPARISON})


def sample_quality(run: base.Run) -> base.Output:
  """FD, KID, precision/recall, density/coverage of ``num_generated`` samples (the eval
  images' conditioning) against the eval split, and the same between the first
  ``num_generated`` train images and the eval split (what real data scores); class
  accuracy for conditional models."""
  ev = run.config.eval
  generated, labels, _ = run.generated()
  real, fake = run.features("eval"), run.features("generated")
  n_ref = min(len(run.train_ds), len(fake))
  train_feats = run.features("train")[:n_ref]
  m = min(ev.kid_subset_size, len(real), len(fake))
  kid = functools.partial(kmetrics.kernel_inception_distance, num_subsets=ev.kid_subsets,
                          subset_size=m, seed=run.config.seed)
  k = ev.get("prdc_k", 5)
  out = base.Output()
  out.metrics.update(_scores(run, fake, real, kid, k, generated, labels))
  out.metrics["fd_real_train_vs_eval"] = kmetrics.frechet_distance(train_feats, real)
  out.metrics["kid_real_train_vs_eval"] = kid(train_feats, real)[0]
  out.metrics.update({f"{name}_real_train_vs_eval": value for name, value in
                      kmetrics.precision_recall_density_coverage(real, train_feats, k).items()})
  out.protocol.update(
      num_generated=len(fake), num_real_eval=len(real), num_real_train_reference=n_ref,
      kid_subsets=ev.kid_subsets, kid_subset_size=m, prdc_k=k,
      generated_conditioning=("labels and styles of the eval images, in order"
                              if run.task.conditional else "none"),
      sampler=_describe_sampler(run))
  if run.sampler() != "prior":  # the comparison that tells the prior's holes from the decoder
    prior_images, _, _ = run.generated("prior")
    prior = _scores(run, run.features("generated", "prior"), real, kid, k, prior_images, labels)
    out.metrics.update({f"{name}_prior": prior[name] for name in PRIOR_COMPARISON
                        if name in prior})
  return out


def _describe_sampler(run: base.Run) -> str:
  if run.sampler() == "prior":
    return "prior: z ~ N(0, I)" if run.task.has_encoder else "the generator's noise N(0, I)"
  k = run.config.eval.get("gmm_components", ex_post.DEFAULT_COMPONENTS)
  per = "one per class, " if run.task.conditional else ""
  return (f"gmm: Gaussian mixtures ({per}{k} full-covariance components) fitted to the train "
          "split's z_mean (Ghosh et al. 2020); *_prior metrics: prior samples")


def _scores(run, fake, real, kid, k, generated, labels) -> dict:
  """FD, KID, precision/recall/density/coverage of the features ``fake`` against ``real``
  and, for a conditional model, the evaluator's class accuracy on ``generated``."""
  out = {"fd": kmetrics.frechet_distance(fake, real)}
  out["kid"], out["kid_std"] = kid(fake, real)
  out.update(kmetrics.precision_recall_density_coverage(real, fake, k))
  if run.task.conditional:
    predicted = run.evaluator.predict(generated)
    acc, balanced = kstyle_eval.class_accuracy(predicted, labels, run.info.num_classes)
    per_class = [round(float(np.mean(predicted[labels == c] == c)), 4) if np.any(labels == c)
                 else None for c in range(run.info.num_classes)]
    out.update(class_accuracy=acc, class_balanced_accuracy=balanced,
               class_accuracy_per_class=per_class)
  return out
