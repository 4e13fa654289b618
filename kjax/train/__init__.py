"""The training loop shared by every kjax model: jit-compiled steps, checkpoints, metrics.

The model family (β-VAE, CVAE, CGAN) is a ``kjax.tasks.Task``; this package runs it, for
one run (``train``) or for a stack of runs that share one compiled program (``train_runs``:
a sweep's group, the runs on a leading axis of every array). It evaluates every epoch
(``kjax.evaluator``) but runs no final evaluation: ``kjax.experiment`` does that.

Layout: ``loop`` (the loop itself, on one screen), ``program`` (the compiled chunks, data
and keys on the mesh), ``resume`` (restore, optimiser changes, set-aside), ``actions``
(what fires between chunks: sync and NaN guard, step logging, epoch end, checkpoint,
stop; in that order), ``runs`` (one object per run), ``finish`` (summary, timing, final
figures).

PRNG discipline (DESIGN.md, ``kjax.rng``): one root key from ``config.seed``; fixed streams
derived from it by ``fold_in``; the step's key is ``fold_in(train_key, step)`` inside the
compiled step and the epoch's data order is a permutation drawn from
``fold_in(data_key, epoch)``. A run is therefore a pure function of (config, data): a resumed
run, and the same run stacked with others, replays the same noise and batches.
"""

from kjax.train.finish import FIGURES_MANIFEST, peak_rss_mib
from kjax.train.loop import TrainedRun, prepare, train, train_runs
from kjax.train.program import (BINARIZE_STREAM, binarize_batch, device_data, learning_rates,
                                make_train_chunk, stack, unstack, zero_sums)
from kjax.train.resume import (HISTORY_FILE, lower_learning_rate_flags, optim_changes,
                               with_optimizer_settings)

__all__ = ["BINARIZE_STREAM", "FIGURES_MANIFEST", "HISTORY_FILE", "TrainedRun",
           "binarize_batch", "device_data", "learning_rates", "lower_learning_rate_flags",
           "make_train_chunk", "optim_changes", "peak_rss_mib", "prepare", "stack", "train",
           "train_runs", "unstack", "with_optimizer_settings", "zero_sums"]
