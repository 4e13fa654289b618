"""Config sections shared by every experiment file in ``configs/``."""

import ml_collections


def data(name: str) -> ml_collections.ConfigDict:
  """``config.data`` for the data set ``name`` (``kmnist`` | ``k49`` | ``mnist``)."""
  section = ml_collections.ConfigDict()
  section.name = name
  section.data_dir = ""          # folder of official files; empty: TFDS
  section.tfds_data_dir = ""     # where TFDS prepares data; empty: TFDS's default
  section.train_split = "train"
  # KMNIST and MNIST: the last 2,000 test images, which the shipped evaluators (trained on
  # test[:8000]) never saw; K49 (no shipped evaluator): its whole test split.
  section.eval_split = "test" if name == "k49" else "test[8000:]"
  section.verify_checksums = True
  section.style_pixel_threshold = 0   # foreground: pixel value > this (0..254)
  section.style_reduction = "median"  # or "mean" (Shyam 2024, Architecture 1)
  section.cache_dir = ""              # empty: $KJAX_CACHE_DIR or ~/.cache/kjax
  # "none": grey levels in [0, 1]; "dynamic": train batches binarised afresh each step
  # (Burda et al. 2015), the eval split once; "static": both splits once (kjax.data.loading).
  section.binarize = "none"
  return section


def train(num_epochs: int, batch_size: int, log_every_steps: int,
          checkpoint_every_steps: int) -> ml_collections.ConfigDict:
  """``config.train``: the loop's schedule, evaluation batch and checkpoints."""
  section = ml_collections.ConfigDict()
  section.num_epochs = num_epochs
  section.batch_size = batch_size
  section.eval_batch_size = 1000
  # Train steps per compiled call (lax.scan): 'auto' is 1 on CPU and up to 100 on GPU/TPU
  # (kjax.autotune, measured); or an integer.
  section.steps_per_call = "auto"
  section.log_every_steps = log_every_steps
  section.checkpoint_every_steps = checkpoint_every_steps
  section.keep_checkpoints = 3
  return section


def evaluation(iwae_samples: int = 5000, encoder: bool = False) -> ml_collections.ConfigDict:
  """``config.eval``: what ``kjax.evaluation`` measures after training or with ``--mode=evaluate``;
  ``encoder``: a VAE's, with the latent sampler of its sample metrics."""
  section = ml_collections.ConfigDict()
  section.at_end_of_training = True  # evaluate and write report.html when training ends
  # The domain evaluator of FD, KID, precision/recall, density/coverage, class accuracy:
  # empty: the reference evaluator shipped for the data set (KMNIST, MNIST; K49 has none);
  # a configs/classifier.py workdir on the same data set; 'none': skip those metrics.
  section.classifier_workdir = ""
  section.iwae_samples = iwae_samples  # k of the IWAE bound (Burda et al. 2015)
  section.iwae_chunk_size = 100      # samples per chunk of the streamed log-sum-exp
  section.iwae_batch_size = 20       # eval images per chunk (chunk × batch decoder calls)
  section.iwae_max_examples = 0      # eval images in the IWAE estimate; 0: all
  section.epoch_iwae_samples = 0     # k of an IWAE bound in every epoch's eval; 0: none
  section.num_generated = 0          # samples for FD, KID, class and style; 0: eval size
  section.prdc_k = 5                 # k of the k-NN balls of precision/recall/density/coverage
  section.cas_epochs = 5             # epochs of the CAS classifier on samples; 0: no CAS
  section.kid_subsets = 10
  section.kid_subset_size = 1000
  section.tsne_max_points = 2000
  if encoder:
    # The latents of the sample metrics: 'prior' N(0, I) | 'gmm' a Gaussian mixture fitted
    # to the train split's z_mean (Ghosh et al. 2020), with the prior's metrics beside it.
    section.sampler = "prior"
    section.gmm_components = 10
  return section


def mesh() -> ml_collections.ConfigDict:
  """``config.mesh``: how a program uses the devices of the job (``kjax.sharding``); 0 chooses.

  ``runs``: devices along a sweep group's stacked runs; ``data``: devices along each run's
  batch. Automatic: a single run splits its batch over every device; a stack of R runs
  takes the largest divisor of the device count up to R for ``runs``. Nothing else in an
  experiment's config changes with the number of devices or hosts.
  """
  section = ml_collections.ConfigDict()
  section.runs = 0
  section.data = 0
  return section
