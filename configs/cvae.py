r"""Conditional VAE on Kuzushiji-49, conditioned on class and thick/thin style (Shyam 2024, §4.2).

As in Midhun Shyam, "Conditional Generation with VAE and GAN" (Western Sydney University,
2024): its network and hyper-parameters: an MLP 784 + 49 + 2 → 144 → latent 2 and back,
Bernoulli decoder (BCE) + KL, Adam 1e-3, batch 100; 100 epochs (Shyam's architecture
experiments; its main run took 2,000).

  python launch.py --config=configs/cvae.py      # K49 through TFDS (downloads)

Offline, on the real KMNIST test split here:

  python launch.py --config=configs/cvae.py --workdir=runs/cvae_kmnist \
    --config.data.name=kmnist --config.data.data_dir=../shared/data/kmnist \
    --config.data.train_split='test[:8000]' --config.data.eval_split='test[8000:]'

Variants: --config.model.architecture=mlp_bn (Shyam's Architecture 3) or conv (the
β-VAE trunk); --config.data.style_reduction=mean (Architecture 1); --config.objective.beta;
--config.objective.name=beta_tc_vae | annealed_vae (see configs/beta_vae.py).
Leaves the workdir contract plus figures/class_style_samples.png (every class, thin |
thick), reconstructions, latent manifold, loss curves and figures/progress/epoch_*.png.
Generate from the trained run: python -m kjax.generate --workdir=runs/cvae --label=0 --style=thick
"""

import ml_collections

from kjax.configs import common


def get_config() -> ml_collections.ConfigDict:
  """The default CVAE experiment."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = common.data("k49")

  config.model = ml_collections.ConfigDict()
  config.model.name = "cvae"
  config.model.architecture = "mlp"  # "mlp" | "mlp_bn" (Architecture 3) | "conv"
  config.model.latent_dim = 2
  config.model.hidden = 144          # 12 × 12, Shyam's hidden width
  config.model.channels = (32, 64)   # "conv" only
  config.model.conv_impl = "auto"    # "conv" only; see configs/beta_vae.py

  config.objective = ml_collections.ConfigDict()
  config.objective.beta = 1.0                # Shyam's plain ELBO
  config.objective.likelihood = "bernoulli"  # BCE, as Shyam used
  config.objective.gaussian_variance = 0.5
  # The β-VAE family (kjax.objectives.VAE_OBJECTIVES): "beta_vae" (rec + β·kl), "beta_tc_vae"
  # (Chen et al. 2018: rec + kl + (β − 1)·TC) or "annealed_vae" (Burgess et al. 2018).
  config.objective.name = "beta_vae"
  config.objective.kl_warmup_steps = 0  # KL weight × min(1, step / this) in training; 0: off
  # annealed_vae: rec + gamma·|kl − C|, C rising linearly to c_max nats over c_steps steps.
  config.objective.gamma = 1000.0
  config.objective.c_max = 25.0
  config.objective.c_steps = 10000

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-3  # Adam

  config.train = common.train(num_epochs=100, batch_size=100, log_every_steps=500,
                              checkpoint_every_steps=2000)

  config.eval = common.evaluation(encoder=True)
  config.mesh = common.mesh()

  config.figures = ml_collections.ConfigDict()
  config.figures.samples_per_style = 6      # per class and style in class_style_samples.png
  config.figures.progress_every_epochs = 10  # real vs generated grids; 0: none
  config.figures.preview_every_epochs = 10  # TensorBoard images, frames/ (issue 27: 0.1 s epochs)
  return config
