r"""CGAN study: losses (non-saturating ``bce``, ``hinge``) × G's learning rate {1e-4, 2e-4}
(D's stays 4e-4, ``configs/cgan.py``'s TTUR) × seeds {0, 1, 2} = 12 runs of
``configs/cgan.py``. The learning rates and seeds of a loss share one compiled program
(they live in the optimiser's state); each loss is a group.

  python launch.py --config=configs/cgan_sweep.py --workdir=runs/cgan_sweep \
    --config.data.name=kmnist --config.data.data_dir=../shared/data/kmnist \
    --config.data.train_split='test[:8000]' --config.data.eval_split='test[8000:]'
"""

import ml_collections

from kjax.configs import cgan


def get_config() -> ml_collections.ConfigDict:
  """The loss × learning rate × seed study of the CGAN."""
  config = cgan.get_config()
  config.sweep = ml_collections.ConfigDict()
  config.sweep.loss = ("bce", "hinge")
  config.sweep.learning_rate = (1e-4, 2e-4)
  config.sweep.seed = (0, 1, 2)
  config.sweep.max_runs = 64
  config.sweep.sharing = "auto"
  # Many machines (docs/scaling.md): 'i/n' trains the i-th of n parts of the grid;
  # 'ray' runs the parts as Ray tasks (config.sweep.parts of them; 0: one per program).
  config.sweep.shard = ""
  config.sweep.executor = "local"
  config.sweep.parts = 0
  return config
