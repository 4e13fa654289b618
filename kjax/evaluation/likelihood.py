"""The likelihood of the eval split under a VAE: the negative ELBO and its terms, and the
IWAE bound on −log p(x) with k = ``eval.iwae_samples`` (Burda et al. 2015, Eq. 8)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from kjax import evaluator as kevaluator
from kjax import progress
from kjax import rng
from kjax import sharding
from kjax.evaluation import base

METRIC_DOCS = {
    "nelbo": "negative ELBO, nats per image (eval split, the run's fixed eval noise)",
    "rec": "reconstruction term of the ELBO, nats per image",
    "kl": "KL(q(z|x) || p(z)) term, nats per image",
    "loss": "the training objective on the eval split, nats per image (VAEs: rec + beta * "
            "kl; a classifier: softmax cross-entropy)",
    "iwae_nll": "IWAE bound on -log p(x) (Burda et al. 2015), nats per image",
    "nelbo_iwae_examples": "nelbo on the eval images of the IWAE estimate (when a subset)",
}


def likelihood(run: base.Run) -> base.Output:
  """``nelbo``, ``rec``, ``kl``, ``loss`` over the whole eval split (the run's ``eval``
  stream, as every epoch) and ``iwae_nll`` on its first ``eval.iwae_max_examples`` images
  (0: all), in nats per image; with a subset, ``nelbo_iwae_examples`` on the same images."""
  config, task, state, ds = run.config, run.task, run.state, run.eval_ds
  ev = config.eval
  eval_key = rng.stream_keys(config.seed)["eval"]
  mesh = sharding.local_mesh()
  out = base.Output(metrics=dict(kevaluator.Evaluator(
      task, ds, config.train.eval_batch_size, eval_key, mesh=mesh)(state)))
  n = len(ds) if not ev.iwae_max_examples else min(ev.iwae_max_examples, len(ds))
  k, b = ev.iwae_samples, ev.iwae_batch_size
  bound = sharding.split_batch(functools.partial(
      task.log_likelihood_bound, num_samples=k, chunk_size=ev.iwae_chunk_size), (1,))
  key = run.key("iwae")
  values = []
  shown = progress.Progress(f"evaluation: IWAE bound, k={k}", n, "images")
  for i in range(0, n, b):
    rows = slice(i, min(i + b, n))
    batch = {"images": jnp.asarray(ds.images[rows]), "labels": jnp.asarray(run.labels[rows]),
             "styles": jnp.asarray(run.styles[rows])}
    values.append(np.asarray(bound(state, batch, jax.random.fold_in(key, i))))
    shown.update(rows.stop)
  out.metrics["iwae_nll"] = float(-np.concatenate(values).mean())
  if n < len(ds):  # the ELBO on the same images, so that the two compare
    subset = dataclasses.replace(ds, images=ds.images[:n], labels=ds.labels[:n],
                                 styles=ds.styles[:n])
    out.metrics["nelbo_iwae_examples"] = kevaluator.Evaluator(
        task, subset, config.train.eval_batch_size, eval_key, mesh=mesh)(state)["nelbo"]
  binarize = config.data.get("binarize", "none")
  out.protocol.update(iwae_samples=k, iwae_examples=n, likelihood=(
      f"{config.objective.likelihood} on grey levels in [0, 1] (not binarised)"
      if binarize == "none" else f"{config.objective.likelihood} on binarised images "
      f"({binarize} binarisation of the train split; the eval split binarised once)"))
  return out
