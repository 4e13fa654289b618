r"""An external check of kjax's likelihood code: the IWAE paper's one-stochastic-layer VAE on
dynamically binarised MNIST (Burda, Grosse & Salakhutdinov 2015, "Importance Weighted
Autoencoders", Table 1: VAE, k = 1 in training, 86.76 nats by the IWAE bound at k = 5000).

The paper's protocol: 784–200–200–50 (tanh) encoder and its mirror as decoder, Bernoulli
likelihood, β = 1; the train split binarised afresh at every step; Adam (β₁ 0.9, β₂ 0.999,
ε 1e-4), batch 20, learning rate 1e-3 · 10^(−i/7) for 3^i epochs, i = 0..7 (3,280 epochs);
test NLL by the IWAE bound with k = 5000 on all 10,000 test images.

With the official MNIST training split (TFDS downloads it):

  python launch.py --config=configs/iwae_mnist.py

Here (no training split offline): the first 8,000 test images to train, the last 2,000 to
evaluate, and far fewer epochs (docs/results.md, "A paper's table as an external check"):

  python launch.py --config=configs/iwae_mnist.py --workdir=runs/iwae_mnist \
    --config.data.data_dir=../shared/data/mnist \
    --config.data.train_split='test[:8000]' --config.data.eval_split='test[8000:]' \
    --config.train.num_epochs=40
"""

import ml_collections

from kjax.configs import beta_vae


def get_config() -> ml_collections.ConfigDict:
  """Burda et al. 2015's VAE (k = 1) on dynamically binarised MNIST."""
  config = beta_vae.get_config()
  config.data.name = "mnist"
  config.data.binarize = "dynamic"
  config.model.architecture = "mlp"
  config.model.mlp_widths = (200, 200)
  config.model.latent_dim = 50
  config.objective.beta = 1.0
  config.objective.likelihood = "bernoulli"
  config.optim.learning_rate = 1e-3
  config.optim.eps = 1e-4
  config.optim.schedule = "iwae"
  config.train.num_epochs = 3280
  config.train.batch_size = 20
  config.train.log_every_steps = 500
  config.train.checkpoint_every_steps = 5000
  config.eval.iwae_samples = 5000
  config.eval.iwae_max_examples = 0   # every eval image, as the paper
  config.eval.iwae_batch_size = 10
  config.figures.interpolate_classes = (1, 7)
  config.figures.preview_every_epochs = 20  # 0.5 s epochs: previews every epoch were 17% of them
  return config
