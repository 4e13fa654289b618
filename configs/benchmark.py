r"""The Kuzushiji generative benchmark: every model family, several settings, ≥ 3 seeds
each, one table of mean ± std (``kjax.benchmark``).

Studies (each a sweep of its model's config, run into ``WORKDIR/<study>/``):

* ``beta_vae``: β ∈ {1, 4} × latent_dim ∈ {2, 10} (the conv β-VAE of configs/beta_vae.py);
* ``cvae``: architecture ∈ {mlp, mlp_bn} × latent_dim ∈ {2, 10} (configs/cvae.py);
* ``cgan``: kjax's default CGAN (configs/cgan.py);
* ``cgan_seed``: the setup of Shyam (2024), "Conditional Generation with VAE and
  GAN" (``mlp``, sigmoid output, Adam β₁ = 0.9 and 1e-4 for both networks, the class and
  style concatenated to D's input).

Every run is evaluated with the shipped reference evaluator of the data set (FD, KID,
precision/recall, density/coverage, class accuracy, CAS, memorisation) and its likelihood
where it has one; the VAEs' sample metrics come from the ex-post mixture
(``eval.sampler='gmm'``) with the prior's beside them (``*_prior``), and their latents get
the disentanglement scores (MIG, DCI, SAP, FactorVAE). Offline here, on the real KMNIST test split:

  python launch.py --config=configs/benchmark.py --workdir=runs/benchmark \
    --config.data.data_dir=../shared/data/kmnist \
    --config.data.train_split='test[:8000]' --config.data.eval_split='test[8000:]'

``--config.data.name=mnist`` (with its files) runs it on MNIST; ``k49`` on Kuzushiji-49
where a user has the data (with ``--config.studies.<s>.eval.classifier_workdir`` set:
no K49 evaluator is shipped). ``--config.max_epochs=N`` caps every study's epochs (the
table in docs/results.md says which cap it used); ``--config.studies.beta_vae.train.num_epochs=N``
sets one. ``--mode=results`` rebuilds ``results.md`` from finished runs.
"""

import ml_collections

from kjax.configs import beta_vae
from kjax.configs import cgan
from kjax.configs import common
from kjax.configs import cvae


def _study(config: ml_collections.ConfigDict, **axes) -> ml_collections.ConfigDict:
  """``config`` as a study: its sweep axes (the seeds come from ``config.seeds``), without
  its own data section (the benchmark's ``config.data`` is every study's)."""
  del config.data
  config.sweep = ml_collections.ConfigDict()
  for name, values in axes.items():
    config.sweep[name] = values
  config.sweep.max_runs = 64
  config.sweep.sharing = "auto"
  return config


def get_config() -> ml_collections.ConfigDict:
  """The benchmark: four studies, three seeds."""
  config = ml_collections.ConfigDict()
  config.data = common.data("kmnist")  # every study's data
  config.seeds = (0, 1, 2)
  config.max_epochs = 0  # > 0: caps every study's train.num_epochs
  config.studies = ml_collections.ConfigDict()
  config.studies.beta_vae = _study(beta_vae.get_config(), beta=(1.0, 4.0), latent_dim=(2, 10))
  config.studies.cvae = _study(cvae.get_config(), architecture=("mlp", "mlp_bn"),
                               latent_dim=(2, 10))
  for vae in (config.studies.beta_vae, config.studies.cvae):
    vae.eval.sampler = "gmm"  # recall of the mixture's samples, the prior's beside it
  config.studies.cgan = _study(cgan.get_config())
  seed_setup = cgan.get_config()
  seed_setup.model.architecture = "mlp"
  seed_setup.model.output = "sigmoid"
  seed_setup.optim.b1 = 0.9
  seed_setup.model.d_conditioning = "concat"
  seed_setup.optim.d_learning_rate = 1e-4
  seed_setup.optim.g_ema_decay = 0.0
  seed_setup.train.num_epochs = 100
  config.studies.cgan_seed = _study(seed_setup)
  return config
