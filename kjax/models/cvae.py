"""Conditional VAE: q(z | x, class, style) and p(x | z, class, style).

The model of Shyam (2024), "Conditional Generation with VAE and GAN", and variants.

Conditioning is one-hot: the class (``num_classes``) and the thick/thin style (2) are
concatenated to the flattened image in the encoder and to z in the decoder (Sohn et al.
2015, "Learning Structured Output Representation using Deep Conditional Generative
Models"). Architectures (``architecture``):

* ``'mlp'``: Shyam's network. Encoder 784 + C + 2 → ``hidden`` (144, ReLU) → z heads;
  decoder ``latent_dim`` + C + 2 → ``hidden`` (ReLU) → 784 logits (784 = 28 · 28 pixels;
  H · W for the data set's ``image_shape``).
* ``'mlp_bn'``: Shyam's Architecture 3. Encoder 784 + C + 2 → 256 → 128, decoder
  ``latent_dim`` + C + 2 → 256 → ``hidden``, each layer followed by batch norm and ReLU.
  Call with ``train=True`` and ``mutable=['batch_stats']`` while training.
* ``'conv'``: the β-VAE's convolutional trunk (``kjax.models.vae``), with the one-hot
  labels broadcast as extra input channels of the encoder and concatenated to z.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kjax import errors
from kjax.models import vae

ARCHITECTURES = ("mlp", "mlp_bn", "conv")


def one_hot_condition(labels: jax.Array, styles: jax.Array, num_classes: int) -> jax.Array:
  """int ``[B]`` classes and int ``[B]`` styles → float32 ``[B, num_classes + 2]``."""
  return jnp.concatenate([jax.nn.one_hot(labels, num_classes),
                          jax.nn.one_hot(styles, 2)], axis=-1)


class _DenseStack(nn.Module):
  """Dense layers with ReLU, each preceded by batch norm when ``batch_norm``."""

  widths: Sequence[int]
  batch_norm: bool

  @nn.compact
  def __call__(self, h: jax.Array, train: bool) -> jax.Array:
    for width in self.widths:
      h = nn.Dense(width)(h)
      if self.batch_norm:
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
      h = nn.relu(h)
    return h


class ConditionalVAE(nn.Module):
  """CVAE conditioned on class and stroke style; see the module docstring.

  Call with ``rngs={'latent': key}`` (reparameterisation noise, as ``BetaVAE``).

  Attributes:
    num_classes: number of classes (49 for Kuzushiji-49, 10 for KMNIST and MNIST).
    latent_dim: dimension of z (Shyam 2024: 2).
    architecture: ``'mlp'`` | ``'mlp_bn'`` | ``'conv'``.
    hidden: the MLP's hidden width (Shyam 2024: 144).
    channels: the conv trunk's channels (``'conv'`` only).
    conv_impl: ``'conv'`` only: ``kjax.models.conv.IMPLS``.
    image_shape: ``(H, W, C)`` of the images, the data set's (``DatasetInfo.image_shape``).
  """

  num_classes: int
  latent_dim: int = 2
  architecture: str = "mlp"
  hidden: int = 144
  channels: Sequence[int] = (32, 64)
  conv_impl: str = "auto"
  image_shape: Sequence[int] = (28, 28, 1)

  def setup(self):
    if self.architecture not in ARCHITECTURES:
      raise errors.ConfigError(f"config.model.architecture={self.architecture!r} is not one of "
                       f"{ARCHITECTURES}")
    if self.architecture == "conv":
      self.encoder_trunk = vae.ConvEncoder(self.latent_dim, tuple(self.channels), 16,
                                           self.conv_impl)
      self.decoder_trunk = vae.ConvDecoder(tuple(self.channels), conv_impl=self.conv_impl,
                                           image_shape=tuple(self.image_shape))
    else:
      bn = self.architecture == "mlp_bn"
      self.encoder_trunk = _DenseStack((256, 128) if bn else (self.hidden,), bn)
      self.decoder_trunk = _DenseStack((256, self.hidden) if bn else (self.hidden,), bn)
      self.z_mean = nn.Dense(self.latent_dim)
      self.z_logvar = nn.Dense(self.latent_dim)
      self.logits = nn.Dense(int(np.prod(self.image_shape)))

  def encode(self, x: jax.Array, labels: jax.Array, styles: jax.Array,
             train: bool = False) -> tuple[jax.Array, jax.Array]:
    """float ``[B, H, W, C]`` in [0, 1], int ``[B]``, int ``[B]`` → ``(z_mean, z_logvar)``,
    each float ``[B, latent_dim]``."""
    c = one_hot_condition(labels, styles, self.num_classes)
    if self.architecture == "conv":
      planes = jnp.broadcast_to(c[:, None, None, :], (*x.shape[:3], c.shape[-1]))
      return self.encoder_trunk(jnp.concatenate([x, planes], axis=-1))
    h = self.encoder_trunk(jnp.concatenate([x.reshape(x.shape[0], -1), c], -1), train)
    return self.z_mean(h), self.z_logvar(h)

  def decode(self, z: jax.Array, labels: jax.Array, styles: jax.Array,
             train: bool = False) -> jax.Array:
    """float ``[B, latent_dim]``, int ``[B]``, int ``[B]`` → logits float ``[B, H, W, C]``
    (``image_shape``)."""
    zc = jnp.concatenate([z, one_hot_condition(labels, styles, self.num_classes)], -1)
    if self.architecture == "conv":
      return self.decoder_trunk(zc)
    return self.logits(self.decoder_trunk(zc, train)).reshape(z.shape[0], *self.image_shape)

  def __call__(self, x: jax.Array, labels: jax.Array, styles: jax.Array,
               train: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
    """→ ``(logits [B, H, W, C], z_mean [B, latent_dim], z_logvar [B, latent_dim])``."""
    z_mean, z_logvar = self.encode(x, labels, styles, train)
    eps = jax.random.normal(self.make_rng("latent"), z_mean.shape, z_mean.dtype)
    return self.decode(z_mean + jnp.exp(0.5 * z_logvar) * eps, labels, styles, train), \
        z_mean, z_logvar
