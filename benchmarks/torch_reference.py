"""Idiomatic PyTorch ports of kjax's benchmarked models, for ``benchmarks/compare.py``.

Written as a PyTorch user would (``nn.Module``, eager autograd, ``torch.optim.Adam``,
batches indexed from a uint8 tensor held in memory), computing what the kjax step computes:

* ``beta_vae``: the Keras-example conv β-VAE of Islam's "Beyond Pixels" tutorial and of
  Ahmed (2025), "Generative AI Theory & Applications Report 1: Variational Autoencoders"
  (``kjax.models.vae``): conv 32, 64 (3×3, stride 2) → dense 16 → ``z_mean``/``z_logvar``;
  dense 7·7·64 → two stride-2 transposed convolutions (64, 32) → a 3×3 conv to one channel
  of Bernoulli logits; loss rec + β·KL (β = 4), batch 128, Adam 1e-3.
* ``cvae``: the MLP CVAE of Shyam (2024), "Conditional Generation with VAE and GAN"
  (``kjax.models.cvae``, ``architecture='mlp'``): one hidden layer of 144 in each network,
  one-hot class and style concatenated, batch 100, Adam 1e-3.
* ``cgan``: Shyam (2024)'s MLP CGAN (``kjax.models.cgan``, ``architecture='mlp'``): one hidden
  layer of 256 in G and D, z of 64, tanh output, non-saturating BCE, one D and one G Adam
  step (lr 1e-4) per step, batch 128.

Needs ``torch`` (``pip install -e '.[bench]'``); nothing in ``kjax`` imports this file.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

BATCH_SIZES = {"beta_vae": 128, "cvae": 100, "cgan": 128}


def _one_hot(labels, styles, num_classes):
  return torch.cat([F.one_hot(labels, num_classes), F.one_hot(styles, 2)], 1).float()


class ConvVAE(nn.Module):
  """The Keras-example conv VAE (28×28×1 ↔ 2-D latent)."""

  def __init__(self, latent_dim=2):
    super().__init__()
    self.encoder = nn.Sequential(
        nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 16), nn.ReLU())
    self.z_mean = nn.Linear(16, latent_dim)
    self.z_logvar = nn.Linear(16, latent_dim)
    self.decoder = nn.Sequential(
        nn.Linear(latent_dim, 7 * 7 * 64), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.Conv2d(32, 1, 3, padding=1))

  def forward(self, x):
    h = self.encoder(x)
    z_mean, z_logvar = self.z_mean(h), self.z_logvar(h)
    z = z_mean + torch.exp(0.5 * z_logvar) * torch.randn_like(z_mean)
    return self.decoder(z), z_mean, z_logvar


class MLPCVAE(nn.Module):
  """Shyam (2024)'s CVAE: 784 + C + 2 → 144 → z; z + C + 2 → 144 → 784."""

  def __init__(self, num_classes, latent_dim=2, hidden=144):
    super().__init__()
    self.num_classes = num_classes
    self.fc1 = nn.Linear(784 + num_classes + 2, hidden)
    self.z_mean = nn.Linear(hidden, latent_dim)
    self.z_logvar = nn.Linear(hidden, latent_dim)
    self.fc3 = nn.Linear(latent_dim + num_classes + 2, hidden)
    self.fc4 = nn.Linear(hidden, 784)

  def forward(self, x, labels, styles):
    c = _one_hot(labels, styles, self.num_classes)
    h = F.relu(self.fc1(torch.cat([x.flatten(1), c], 1)))
    z_mean, z_logvar = self.z_mean(h), self.z_logvar(h)
    z = z_mean + torch.exp(0.5 * z_logvar) * torch.randn_like(z_mean)
    return self.fc4(F.relu(self.fc3(torch.cat([z, c], 1)))), z_mean, z_logvar


class Generator(nn.Module):
  """Shyam (2024)'s G: z + C + 2 → 256 (ReLU) → 784 (tanh)."""

  def __init__(self, num_classes, latent_dim=64, hidden=256):
    super().__init__()
    self.num_classes = num_classes
    self.net = nn.Sequential(nn.Linear(latent_dim + num_classes + 2, hidden), nn.ReLU(),
                             nn.Linear(hidden, 784), nn.Tanh())

  def forward(self, z, labels, styles):
    return self.net(torch.cat([z, _one_hot(labels, styles, self.num_classes)], 1))


class Discriminator(nn.Module):
  """Shyam (2024)'s D: 784 + C + 2 → 256 (ReLU) → 1 logit."""

  def __init__(self, num_classes, hidden=256):
    super().__init__()
    self.num_classes = num_classes
    self.net = nn.Sequential(nn.Linear(784 + num_classes + 2, hidden), nn.ReLU(),
                             nn.Linear(hidden, 1))

  def forward(self, x, labels, styles):
    return self.net(torch.cat([x, _one_hot(labels, styles, self.num_classes)], 1))[:, 0]


def _vae_loss(logits, x, z_mean, z_logvar, beta):
  rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
  kl = 0.5 * (z_mean.pow(2) + z_logvar.exp() - 1.0 - z_logvar).sum(1)
  return (rec + beta * kl).mean()


def make_trainer(model: str, num_classes: int, device: str = "cpu", compile: bool = False):
  """Returns ``step(images_u8, labels, styles) -> loss tensor`` training ``model`` in place.

  ``images_u8``: uint8 ``[B, 28, 28, 1]`` on ``device``; ``labels``/``styles``: int64 ``[B]``.
  ``compile=True`` wraps the networks' forward passes in ``torch.compile``.
  """
  torch.manual_seed(0)
  if model in ("beta_vae", "cvae"):
    net = (ConvVAE() if model == "beta_vae" else MLPCVAE(num_classes)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    beta = 4.0 if model == "beta_vae" else 1.0
    fwd = torch.compile(net) if compile else net

    def step(images, labels, styles):
      x = images.float().div_(255.0)
      if model == "beta_vae":
        logits, z_mean, z_logvar = fwd(x.permute(0, 3, 1, 2))
        logits = logits.permute(0, 2, 3, 1)
      else:
        logits, z_mean, z_logvar = fwd(x, labels, styles)
        x = x.flatten(1)
      loss = _vae_loss(logits, x, z_mean, z_logvar, beta)
      opt.zero_grad(set_to_none=True)
      loss.backward()
      opt.step()
      return loss
    return step

  if model != "cgan":
    raise ValueError(f"model={model!r} is not one of {tuple(BATCH_SIZES)}")
  gen, disc = Generator(num_classes).to(device), Discriminator(num_classes).to(device)
  g_opt = torch.optim.Adam(gen.parameters(), lr=1e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.999))
  g_fwd = torch.compile(gen) if compile else gen
  d_fwd = torch.compile(disc) if compile else disc

  def step(images, labels, styles):
    real = images.float().flatten(1).div_(127.5).sub_(1.0)
    z = torch.randn(real.shape[0], 64, device=device)
    fake = g_fwd(z, labels, styles)
    d_real, d_fake = d_fwd(real, labels, styles), d_fwd(fake.detach(), labels, styles)
    d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
    out = d_fwd(fake, labels, styles)
    g_loss = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    return g_loss
  return step
