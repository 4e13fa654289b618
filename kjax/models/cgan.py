"""Conditional GAN: generator G(z, class, style) and discriminator D(x, class, style).

Conditioning is one-hot (class and thick/thin style), concatenated to the input of both
networks (Mirza & Osindero 2014), as in Shyam (2024), "Conditional Generation with VAE and
GAN". Architectures (``architecture``):

* ``'mlp'``: Shyam's networks. G: ``latent_dim`` + C + 2 → ``hidden`` (256, ReLU) →
  784; D: 784 + C + 2 → ``hidden`` (ReLU) → 1 (784 = 28 · 28 pixels; H · W for the data
  set's ``image_shape``).
* ``'mlp_large'``: three hidden layers with leaky ReLU (slope 0.2) in both networks,
  G: ``latent_dim`` + C + 2 → 256 → 512 → 1024 → 784, D: 784 + C + 2 → 1024 → 512 → 256
  → 1 (the usual MLP GAN of tutorials, beyond Shyam's).
* ``'dcgan'``: a DCGAN-style pair (Radford et al. 2016) without batch norm (so that the
  step stays a pure function of the parameters and WGAN-GP's per-example penalty holds).
  G is the β-VAE's decoder trunk (dense → 7×7 → two 2× upsamplings → 28×28; H/4 × W/4 →
  H × W for other sizes);
  D sees the image with the one-hot labels as extra input planes, then two stride-2
  convolutions with leaky ReLU (slope 0.2) and a dense output.

Every layer of D can be spectrally normalised (``spectral_norm``: Miyato et al. 2018,
``kjax.models.conv.spectral_normalize``), which bounds its Lipschitz constant.

The generator's output activation (``output``) is ``'tanh'`` (Shyam's original, data on
[-1, 1]) or ``'sigmoid'`` (its Architecture 2, data on [0, 1], which it found best). D
returns one unnormalised score per image (a logit for the BCE loss).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kjax import errors
from kjax.models import conv
from kjax.models import vae
from kjax.models.cvae import one_hot_condition

ARCHITECTURES = ("mlp", "mlp_large", "dcgan")
# The common deeper MLP GAN (e.g. the PyTorch vanilla-GAN tutorials), widths of G; D mirrors them.
LARGE_WIDTHS = (256, 512, 1024)
OUTPUTS = ("tanh", "sigmoid")
CONDITIONINGS = ("concat", "projection")


def _check_architecture(architecture: str) -> None:
  if architecture not in ARCHITECTURES:
    raise errors.ConfigError(f"config.model.architecture={architecture!r} is not one of "
                             f"{ARCHITECTURES}")


def to_output_range(x01: jax.Array, output: str) -> jax.Array:
  """Images in [0, 1] → the generator's range: [-1, 1] for ``'tanh'``, as is for ``'sigmoid'``."""
  return x01 * 2.0 - 1.0 if output == "tanh" else x01


def to_unit_range(x: jax.Array, output: str) -> jax.Array:
  """The inverse of ``to_output_range``: generator outputs → [0, 1]."""
  return (x + 1.0) * 0.5 if output == "tanh" else x


class Generator(nn.Module):
  """G(z, class, style) → an image in the ``output`` activation's range.

  Attributes:
    num_classes: C (49 for K49, 10 for KMNIST/MNIST).
    architecture: ``'mlp'`` | ``'mlp_large'`` | ``'dcgan'``.
    output: ``'tanh'`` ([-1, 1]) | ``'sigmoid'`` ([0, 1]).
    hidden: the MLP's hidden width (Shyam 2024: 256).
    channels: ``'dcgan'`` channels, finest first (``(64, 128)``: 7×7×128 → 14×14×128 →
      28×28×64 → 28×28×1).
    conv_impl: ``'dcgan'`` only: ``kjax.models.conv.IMPLS``.
    image_shape: ``(H, W, C)`` of the images, the data set's (``DatasetInfo.image_shape``).
  """

  num_classes: int
  architecture: str = "mlp"
  output: str = "sigmoid"
  hidden: int = 256
  channels: Sequence[int] = (64, 128)
  conv_impl: str = "auto"
  image_shape: Sequence[int] = (28, 28, 1)

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array, styles: jax.Array) -> jax.Array:
    """float ``[B, latent_dim]``, int ``[B]``, int ``[B]`` → float ``[B, H, W, C]``
    (``image_shape``)."""
    _check_architecture(self.architecture)
    shape = tuple(self.image_shape)
    h = jnp.concatenate([z, one_hot_condition(labels, styles, self.num_classes)], -1)
    if self.architecture == "mlp":
      h = nn.relu(nn.Dense(self.hidden)(h))
      h = nn.Dense(int(np.prod(shape)))(h).reshape(z.shape[0], *shape)
    elif self.architecture == "mlp_large":
      for width in LARGE_WIDTHS:
        h = nn.leaky_relu(nn.Dense(width)(h), 0.2)
      h = nn.Dense(int(np.prod(shape)))(h).reshape(z.shape[0], *shape)
    else:
      h = vae.ConvDecoder(tuple(self.channels), conv_impl=self.conv_impl, image_shape=shape)(h)
    return jnp.tanh(h) if self.output == "tanh" else jax.nn.sigmoid(h)


class SpectralDense(nn.Module):
  """``flax.linen.Dense`` (LeCun-normal kernel, zero bias) with its kernel divided by its
  spectral norm (Miyato et al. 2018): float ``[B, F_in]`` → float ``[B, features]``."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return x @ conv.spectral_normalize(kernel) + bias


class Discriminator(nn.Module):
  """D(x, class, style) → one score (logit) per image.

  Attributes:
    num_classes: C.
    architecture: ``'mlp'`` | ``'mlp_large'`` | ``'dcgan'``.
    hidden: the MLP's hidden width (Shyam 2024: 256).
    channels: ``'dcgan'`` conv channels (``(64, 128)``), one stride-2 stage each.
    conv_impl: ``'dcgan'`` only: ``kjax.models.conv.IMPLS``.
    spectral_norm: every layer spectrally normalised (Miyato et al. 2018).
    conditioning: ``'concat'``: the one-hot class and style joined to the input (Mirza &
      Osindero 2014; input planes for ``'dcgan'``); ``'projection'``: the input alone
      through the trunk to features φ(x), then the score ψ(φ(x)) + ⟨e_class, φ(x)⟩ +
      ⟨e_style, φ(x)⟩ with learned embeddings e (Miyato & Koyama 2018, "cGANs with
      Projection Discriminator", Eq. 3).
  """

  num_classes: int
  architecture: str = "mlp"
  hidden: int = 256
  channels: Sequence[int] = (64, 128)
  conv_impl: str = "auto"
  spectral_norm: bool = False
  conditioning: str = "concat"

  def _dense(self, features: int) -> nn.Module:
    return SpectralDense(features) if self.spectral_norm else nn.Dense(features)

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array, styles: jax.Array) -> jax.Array:
    """float ``[B, H, W, C]`` (generator range), int ``[B]``, int ``[B]`` → float ``[B]``."""
    _check_architecture(self.architecture)
    if self.conditioning not in CONDITIONINGS:
      raise errors.ConfigError(f"config.model.d_conditioning={self.conditioning!r} is not one "
                               f"of {CONDITIONINGS}")
    concat = self.conditioning == "concat"
    c = one_hot_condition(labels, styles, self.num_classes)
    if self.architecture in ("mlp", "mlp_large"):
      h = x.reshape(x.shape[0], -1)
      h = jnp.concatenate([h, c], -1) if concat else h
      if self.architecture == "mlp":
        h = nn.relu(self._dense(self.hidden)(h))
      else:
        for width in reversed(LARGE_WIDTHS):
          h = nn.leaky_relu(self._dense(width)(h), 0.2)
    else:
      h = x
      if concat:
        h = jnp.concatenate([x, jnp.broadcast_to(c[:, None, None, :], (*x.shape[:3], c.shape[-1]))],
                            -1)
      for ch in self.channels:
        h = nn.leaky_relu(conv.Conv(ch, (3, 3), strides=(2, 2), impl=self.conv_impl,
                                    spectral_norm=self.spectral_norm)(h), 0.2)
      h = h.reshape(x.shape[0], -1)
    score = self._dense(1)(h)[:, 0]
    if concat:
      return score
    class_embedding = nn.Embed(self.num_classes, h.shape[-1], name="class_embedding")(labels)
    style_embedding = nn.Embed(2, h.shape[-1], name="style_embedding")(styles)
    return score + jnp.sum((class_embedding + style_embedding) * h, -1)
