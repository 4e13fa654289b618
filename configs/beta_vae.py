r"""β-VAE on Kuzushiji-MNIST as in Islam's tutorial (β = 4, 2-D latent, 25 epochs).

The tutorial: Israt Islam, "Beyond Pixels: Learning the Geometry of Handwriting with
β-Variational Autoencoders", and its repository github.com/iisratislam/disentangled-vae-kmnist.

Run (TFDS downloads KMNIST on a machine with internet):

  python launch.py --config=configs/beta_vae.py

Offline, from a folder of the official files (here: only the test split exists, so train
on 8,000 test images and evaluate on the other 2,000):

  python launch.py --config=configs/beta_vae.py --workdir=runs/beta_vae \
    --config.data.data_dir=../shared/data/kmnist \
    --config.data.train_split='test[:8000]' --config.data.eval_split='test[8000:]'

The run leaves in the workdir: config.json, metrics.jsonl (one line per epoch with
train/ and eval/ loss, rec, kl, nelbo in nats per image), summary.json, checkpoints/
(orbax; a re-run resumes), TensorBoard events, and figures/: the latent manifold coloured
by class, the decoded 2-D latent grid, the class 1 → 8 interpolation (PNG + GIF),
reconstructions, prior samples and loss curves; then the evaluation (kjax.evaluation):
eval/metrics.json (IWAE bound with k = 5000, reconstruction MSE, KL per dimension, active
units, inpainting; FD, KID with --config.eval.classifier_workdir=runs/classifier_kmnist),
eval/ figures and report.html.
Ablations: --config.objective.beta=1.0, --config.model.latent_dim=10,
--config.model.channels='(32, 64, 128)', --config.objective.likelihood=gaussian.
The β-VAE family: --config.objective.name=beta_tc_vae (β-TCVAE; train/ and eval/ tc),
--config.objective.name=annealed_vae (capacity annealing; train/ and eval/ capacity),
--config.objective.kl_warmup_steps=2000 (linear KL warm-up).
"""

import ml_collections

from kjax.configs import common


def get_config() -> ml_collections.ConfigDict:
  """The default β-VAE experiment."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = common.data("kmnist")

  config.model = ml_collections.ConfigDict()
  config.model.name = "beta_vae"
  config.model.latent_dim = 2
  config.model.architecture = "conv"  # or "mlp": tanh MLPs of mlp_widths (configs/iwae_mnist.py)
  config.model.mlp_widths = (200, 200)
  config.model.channels = (32, 64)
  config.model.hidden = 16
  config.model.upsample = "conv_transpose"  # or "subpixel": the same function (kjax.models.vae)
  # How convolutions are computed (kjax.models.conv): "auto" (matmul gradients on CPU, XLA's
  # on GPU/TPU), "xla" or "matmul"; the same function, the fastest measured per platform.
  config.model.conv_impl = "auto"

  config.objective = ml_collections.ConfigDict()
  config.objective.beta = 4.0
  config.objective.likelihood = "bernoulli"  # or "gaussian" (Ahmed 2025, §1.3: MSE)
  config.objective.gaussian_variance = 0.5   # σ² of the Gaussian likelihood
  # The β-VAE family (kjax.objectives.VAE_OBJECTIVES): "beta_vae" (rec + β·kl), "beta_tc_vae"
  # (Chen et al. 2018: rec + kl + (β − 1)·TC) or "annealed_vae" (Burgess et al. 2018).
  config.objective.name = "beta_vae"
  config.objective.kl_warmup_steps = 0  # KL weight × min(1, step / this) in training; 0: off
  # annealed_vae: rec + gamma·|kl − C|, C rising linearly to c_max nats over c_steps steps.
  config.objective.gamma = 1000.0
  config.objective.c_max = 25.0
  config.objective.c_steps = 10000

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-3  # Adam (Kingma & Ba 2015), optax defaults otherwise

  config.train = common.train(num_epochs=25, batch_size=128, log_every_steps=50,
                              checkpoint_every_steps=200)

  config.eval = common.evaluation(encoder=True)
  config.mesh = common.mesh()
  # k = 5000 decoder calls per image, ~5,700 images/s on a 2-core CPU: the IWAE bound uses
  # the first 100 eval images (~90 s there, seconds on a GPU); 0 uses them all.
  config.eval.iwae_max_examples = 100

  config.figures = ml_collections.ConfigDict()
  config.figures.interpolate_classes = (1, 8)  # Islam's tutorial, Fig. 2
  config.figures.interpolation_steps = 10
  config.figures.grid_size = 15                 # decoded 2-D latent grid, per side
  config.figures.preview_every_epochs = 1       # TensorBoard images, frames/ (the GIFs)
  return config
