r"""Evaluation of a trained run: ``WORKDIR/eval/metrics.json``, the evaluation figures in
``WORKDIR/eval/`` and a self-contained ``WORKDIR/report.html``.

Run on an existing workdir (restores its newest checkpoint, trains nothing):

  python launch.py --config=configs/cvae.py --workdir=runs/cvae_kmnist --mode=evaluate \
      <the run's --config flags>

Training runs the same evaluation when it ends (``config.eval.at_end_of_training``), and so
does every run of a sweep or of the benchmark.

One module per evaluation, each one function ``fn(run: base.Run) -> base.Output`` listed in
``EVALUATIONS`` (``run.py``, the driver) with the models it applies to; ``METRIC_DOCS`` has
one line per metric:

* ``likelihood``: negative ELBO and its terms; the IWAE bound (Burda et al. 2015, Eq. 8).
* ``latents``: reconstruction MSE from ``z_mean``, KL per dimension, active units,
  traversals, t-SNE.
* ``mig``, ``dci``, ``sap``, ``factor_vae``: disentanglement of ``z_mean`` (Chen et al. 2018;
  Eastwood & Williams 2018; Kumar et al. 2018; Kim & Mnih 2018) against the factors of
  ``factors`` (class, style, ink, slant, width, height).
* ``inpainting``: the central 10×10 pixels (Ahmed 2025, §2.1).
* ``interpolation``: encoded or noise interpolations; the training GIFs.
* ``sample_quality``: FD, KID, precision/recall, density/coverage in the domain
  evaluator's features (``domain``: the shipped reference evaluator by default); class
  accuracy of conditional samples. A VAE's latents come from the prior or, with
  ``eval.sampler='gmm'``, from ``ex_post``'s mixtures (Ghosh et al. 2020).
* ``style``: style accuracy and the thickness shift of conditional models.
* ``cas``: Classification Accuracy Score of conditional models (Ravuri & Vinyals 2019).
* ``memorisation``: samples' nearest training images against held-out images'.
* ``classifier``: the accuracy of a classifier run.
"""

from kjax.evaluation.base import EVAL_DIR, Output, Run
from kjax.evaluation.domain import classifier_for, load_classifier, params_sha256
from kjax.evaluation.run import (EVALUATIONS, METRIC_DOCS, Evaluation, estimate_seconds,
                                 evaluate, evaluate_workdir, inputs, is_up_to_date)
from kjax.evaluation import style  # noqa: F401  (kjax.evaluation.style.style_accuracy, ...)

__all__ = ["EVAL_DIR", "EVALUATIONS", "METRIC_DOCS", "Evaluation", "Output", "Run",
           "classifier_for", "estimate_seconds", "evaluate", "evaluate_workdir", "inputs",
           "is_up_to_date", "load_classifier", "params_sha256"]
