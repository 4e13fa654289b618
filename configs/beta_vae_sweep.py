r"""The source documents' β-VAE ablation as one study: β ∈ {0.5, 1, 2, 4, 8} × latent_dim ∈
{2, 10} × seeds {0, 1, 2} = 30 runs of ``configs/beta_vae.py`` (Islam's "Beyond Pixels" β-VAE
tutorial: the rate–distortion trade-off as β grows; Ahmed 2025, "Generative AI Theory &
Applications Report 1: Variational Autoencoders": latent dimension 2 vs 10).

  python launch.py --config=configs/beta_vae_sweep.py --workdir=runs/beta_vae_sweep \
    --config.data.data_dir=../shared/data/kmnist \
    --config.data.train_split='test[:8000]' --config.data.eval_split='test[8000:]'

Override any axis with a tuple, e.g. ``--config.sweep.beta='(1.0,4.0)'
--config.sweep.seed='(0,1)' --config.sweep.latent_dim='(2,)'``; every other flag of
``configs/beta_vae.py`` applies to every run. Each run leaves a full workdir in
``WORKDIR/runs/beta=…,latent_dim=…,seed=…/``; the study leaves ``results.csv``,
``results.md``, ``figures/`` (rate–distortion, metrics against β and latent_dim, eval
curves, samples) and ``report.html``. Re-running resumes; more seeds train only the new runs.

The evaluation is lighter than a single run's (k = 1000 IWAE samples on the first 200 eval
images): 30 full evaluations at k = 5000 would take 2.5 hours on a 2-core CPU.
"""

import ml_collections

from kjax.configs import beta_vae


def get_config() -> ml_collections.ConfigDict:
  """The β × latent_dim × seed study of the β-VAE."""
  config = beta_vae.get_config()
  config.eval.iwae_samples = 1000
  config.eval.iwae_max_examples = 200
  config.sweep = ml_collections.ConfigDict()
  config.sweep.beta = (0.5, 1.0, 2.0, 4.0, 8.0)
  config.sweep.latent_dim = (2, 10)
  config.sweep.seed = (0, 1, 2)
  config.sweep.max_runs = 64
  config.sweep.sharing = "auto"  # "vmap" | "map" | "sequential"; auto: kjax.sweep.default_sharing
  # Many machines (docs/scaling.md): 'i/n' trains the i-th of n parts of the grid;
  # 'ray' runs the parts as Ray tasks (config.sweep.parts of them; 0: one per program).
  config.sweep.shard = ""
  config.sweep.executor = "local"
  config.sweep.parts = 0
  return config
