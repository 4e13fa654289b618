r"""CVAE study: the architectures of Shyam (2024) (``mlp``, ``mlp_bn``) × latent_dim ∈ {2, 10} ×
seeds {0, 1, 2} = 12 runs of ``configs/cvae.py``; each architecture × latent_dim is one
group whose 3 seeds train in one compiled program (vmapped MLPs).

  python launch.py --config=configs/cvae_sweep.py --workdir=runs/cvae_sweep \
    --config.data.name=kmnist --config.data.data_dir=../shared/data/kmnist \
    --config.data.train_split='test[:8000]' --config.data.eval_split='test[8000:]'
"""

import ml_collections

from kjax.configs import cvae


def get_config() -> ml_collections.ConfigDict:
  """The architecture × latent_dim × seed study of the CVAE."""
  config = cvae.get_config()
  config.sweep = ml_collections.ConfigDict()
  config.sweep.architecture = ("mlp", "mlp_bn")
  config.sweep.latent_dim = (2, 10)
  config.sweep.seed = (0, 1, 2)
  config.sweep.max_runs = 64
  config.sweep.sharing = "auto"
  # Many machines (docs/scaling.md): 'i/n' trains the i-th of n parts of the grid;
  # 'ray' runs the parts as Ray tasks (config.sweep.parts of them; 0: one per program).
  config.sweep.shard = ""
  config.sweep.executor = "local"
  config.sweep.parts = 0
  return config
