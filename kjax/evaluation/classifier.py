"""The evaluation of a classifier run itself (``configs/classifier.py``): accuracy and
balanced accuracy on the eval split, and the ``params_sha256`` that runs using it quote."""

from __future__ import annotations


from kjax import evaluator as kevaluator
from kjax import rng
from kjax import sharding
from kjax.evaluation import base
from kjax.evaluation import domain
from kjax.evaluation import style as kstyle_eval

METRIC_DOCS = {
    "accuracy": "accuracy on the eval split",
    "balanced_accuracy": "mean over classes of the per-class accuracy, eval split",
}


def accuracy(run: base.Run) -> base.Output:
  """``loss``, ``accuracy`` and ``balanced_accuracy`` on the eval split."""
  config = run.config
  out = base.Output(metrics=dict(kevaluator.Evaluator(
      run.task, run.eval_ds, config.train.eval_batch_size,
      rng.stream_keys(config.seed)["eval"], mesh=sharding.local_mesh())(run.state)))
  predict = sharding.split_batch(run.task.predict, (1,))
  predicted = base.batched(lambda x: predict(run.state, x), run.x_eval)
  out.metrics["balanced_accuracy"] = kstyle_eval.class_accuracy(
      predicted, run.eval_ds.labels, run.info.num_classes)[1]
  out.protocol["params_sha256"] = domain.params_sha256(run.state.params)
  return out
