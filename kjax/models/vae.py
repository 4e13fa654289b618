"""The convolutional β-VAE of the Keras VAE example (Chollet).

Islam's "Beyond Pixels" β-VAE tutorial and Ahmed (2025), "Generative AI Theory &
Applications Report 1: Variational Autoencoders", both build on it.

Encoder: conv 32 and 64 (3×3, stride 2, ReLU) → dense 16 (ReLU) → ``z_mean``, ``z_logvar``.
Decoder: dense 7·7·64 (ReLU) → two ×2 upsampling stages of 64 and 32 channels (3×3,
ReLU) → a 3×3 convolution to one channel of Bernoulli logits. ``channels=(32, 64, 128)``
gives Ahmed's (2025) §1.1 extra stage (encoder to 4×4, decoder from 4×4 through a 7×7 crop).
Sizes follow the data set's ``image_shape`` (H, W, C): 28 → 14 → 7, 32 → 16 → 8 (the
tasks accept heights and widths divisible by 4).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kjax import errors
from kjax.models import conv

UPSAMPLE_METHODS = ("conv_transpose", "subpixel")

_TAP = np.array(conv.TAP)  # output phase a, input shift u → kernel tap (3: a zero pad)


def subpixel_kernel(kernel: jax.Array) -> jax.Array:
  """Rewrites a stride-2 transposed-conv kernel as a stride-1 "sub-pixel" kernel.

  ``conv(x, subpixel_kernel(k), padding ((1, 0), (1, 0)))`` followed by depth-to-space
  equals ``lax.conv_transpose(x, k, (2, 2), 'SAME')`` exactly (Shi et al. 2016, "Real-Time
  Single Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN", §2.2).

  Args:
    kernel: float ``[3, 3, C_in, C_out]`` (HWIO).

  Returns:
    float ``[2, 2, C_in, 4 * C_out]``; output channel ``(a * 2 + b) * C_out + c`` is
    output phase ``(a, b)`` of channel ``c``.
  """
  c_in, c_out = kernel.shape[2], kernel.shape[3]
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # tap 3 = zeros
  # [a, u, b, v, C_in, C_out] -> [u, v, C_in, a, b, C_out]
  taps = padded[_TAP[:, :, None, None], _TAP[None, None, :, :]]
  return taps.transpose(1, 3, 4, 0, 2, 5).reshape(2, 2, c_in, 4 * c_out)


class Upsample2x(nn.Module):
  """×2 spatial upsampling: a 3×3, stride-2 transposed convolution with bias.

  Both methods compute the same function of the same parameters (``kernel`` HWIO
  ``[3, 3, C_in, features]``, ``bias`` ``[features]``):
  ``'conv_transpose'`` is ``lax.conv_transpose`` (as ``flax.linen.ConvTranspose``), with
  the kernel gradient as matmuls under ``impl='matmul'`` (``kjax.models.conv``);
  ``'subpixel'`` runs a stride-1 2×2 convolution with ``subpixel_kernel`` (as an im2col
  matmul) and a depth-to-space shuffle (kjax's first answer to XLA:CPU's slow
  transposed-convolution gradient; ``conv_transpose`` with ``impl='matmul'`` is faster).

  Attributes:
    features: output channels.
    method: ``'conv_transpose'`` or ``'subpixel'``.
    impl: ``kjax.models.conv.IMPLS``.
  """

  features: int
  method: str = "conv_transpose"
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """float ``[B, H, W, C_in]`` → float ``[B, 2H, 2W, features]``."""
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    if self.method == "conv_transpose":
      y = conv.conv_transpose2x(x, kernel, self.impl)
    elif self.method == "subpixel":
      # The stride-1 2×2 convolution as one matmul over 4 shifted copies (im2col): its
      # gradient is two matmuls, ~2× faster on XLA:CPU than a convolution's.
      b, h, w, c_in = x.shape
      xp = jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)))
      patches = jnp.concatenate([xp[:, u:u + h, v:v + w] for u in (0, 1) for v in (0, 1)], -1)
      y = patches @ subpixel_kernel(kernel).reshape(4 * c_in, 4 * self.features)
      y = y.reshape(b, h, w, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
      y = y.reshape(b, 2 * h, 2 * w, self.features)
    else:
      raise errors.ConfigError(f"config.model.upsample={self.method!r} is not one of {UPSAMPLE_METHODS}")
    return y + bias


def _stage_sizes(size: int, stages: int) -> list[int]:
  """Sizes along one axis through ``stages`` stride-2 'SAME' convolutions: 28 → [28, 14, 7,
  4], 32 → [32, 16, 8, 4]."""
  sizes = [size]
  for _ in range(stages):
    sizes.append(-(-sizes[-1] // 2))
  return sizes


class ConvEncoder(nn.Module):
  """q(z | x): a diagonal Gaussian over ``latent_dim`` dimensions.

  Attributes:
    latent_dim: dimension of z.
    channels: conv channels, one stride-2 stage each (Keras example: ``(32, 64)``).
    hidden: width of the dense layer before the heads (Keras example: 16).
    conv_impl: ``kjax.models.conv.IMPLS``.
  """

  latent_dim: int
  channels: Sequence[int] = (32, 64)
  hidden: int = 16
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """float ``[B, H, W, C]`` in [0, 1] → ``(z_mean, z_logvar)``, each float ``[B, latent_dim]``."""
    convs = [conv.Conv(c, (3, 3), strides=(2, 2), impl=self.conv_impl) for c in self.channels]
    dense = nn.Dense(self.hidden)
    heads = nn.Dense(self.latent_dim, name="z_mean"), nn.Dense(self.latent_dim, name="z_logvar")

    def trunk(x):
      for layer in convs:
        x = nn.relu(layer(x))
      x = nn.relu(dense(x.reshape(x.shape[0], -1)))
      return heads[0](x), heads[1](x)

    return conv.over_batch_chunks(trunk, x, self.conv_impl)


class ConvDecoder(nn.Module):
  """p(x | z): per-pixel Bernoulli logits (or Gaussian means through a sigmoid).

  Attributes:
    channels: the encoder's channels; the decoder upsamples through them in reverse.
    upsample: ``Upsample2x`` method, ``'conv_transpose'`` or ``'subpixel'``.
    conv_impl: ``kjax.models.conv.IMPLS``.
    image_shape: ``(H, W, C)`` of the output, the data set's (``DatasetInfo.image_shape``).
  """

  channels: Sequence[int] = (32, 64)
  upsample: str = "conv_transpose"
  conv_impl: str = "auto"
  image_shape: Sequence[int] = (28, 28, 1)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """float ``[B, latent_dim]`` → logits float ``[B, H, W, C]`` (``image_shape``)."""
    height, width, out_channels = self.image_shape
    rows = _stage_sizes(height, len(self.channels))
    cols = _stage_sizes(width, len(self.channels))
    dense = nn.Dense(rows[-1] * cols[-1] * self.channels[-1])
    ups = [Upsample2x(c, self.upsample, self.conv_impl) for c in reversed(self.channels)]
    logits = conv.Conv(out_channels, (3, 3), impl=self.conv_impl, name="logits")

    def trunk(z):
      x = nn.relu(dense(z)).reshape(z.shape[0], rows[-1], cols[-1], -1)
      for up, h, w in zip(ups, reversed(rows[:-1]), reversed(cols[:-1])):
        x = nn.relu(up(x)[:, :h, :w])  # 8 → 7 where sizes are odd
      return logits(x)

    return conv.over_batch_chunks(trunk, z, self.conv_impl)


ARCHITECTURES = ("conv", "mlp")


class MLPEncoder(nn.Module):
  """q(z | x) of the IWAE paper's one-stochastic-layer model (Burda et al. 2015, §5):
  dense tanh layers on the H·W·C pixels (784 for 28 × 28), then linear heads.

  Attributes:
    latent_dim: dimension of z (50 in the paper).
    widths: hidden widths (``(200, 200)`` in the paper).
  """

  latent_dim: int
  widths: Sequence[int] = (200, 200)

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """float ``[B, H, W, C]`` in [0, 1] → ``(z_mean, z_logvar)``, each float ``[B, latent_dim]``."""
    h = x.reshape(x.shape[0], -1)
    for width in self.widths:
      h = jnp.tanh(nn.Dense(width)(h))
    return (nn.Dense(self.latent_dim, name="z_mean")(h),
            nn.Dense(self.latent_dim, name="z_logvar")(h))


class MLPDecoder(nn.Module):
  """p(x | z) of the same model: dense tanh layers (``widths`` reversed), then H·W·C logits.

  Attributes:
    widths: the encoder's hidden widths.
    image_shape: ``(H, W, C)`` of the output (``DatasetInfo.image_shape``).
  """

  widths: Sequence[int] = (200, 200)
  image_shape: Sequence[int] = (28, 28, 1)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """float ``[B, latent_dim]`` → logits float ``[B, H, W, C]`` (``image_shape``)."""
    h = z
    for width in reversed(tuple(self.widths)):
      h = jnp.tanh(nn.Dense(width)(h))
    return nn.Dense(int(np.prod(self.image_shape)))(h).reshape(z.shape[0], *self.image_shape)


class BetaVAE(nn.Module):
  """β-VAE (Higgins et al. 2017) with the Keras-example convolutional networks.

  Call with ``rngs={'latent': key}``: the reparameterisation noise
  ``z = z_mean + exp(z_logvar / 2) * eps`` (Kingma & Welling 2014, Eq. 10) is drawn from
  that key and nowhere else.

  Attributes:
    latent_dim: dimension of z (Islam's tutorial: 2).
    channels: encoder conv channels (``(32, 64)``; ``(32, 64, 128)`` for Ahmed 2025, §1.1).
    hidden: encoder dense width (16).
    upsample: decoder upsampling method (``'conv_transpose'`` | ``'subpixel'``).
    conv_impl: how convolutions are computed (``kjax.models.conv.IMPLS``): the same
      function either way; ``'auto'`` is the fastest measured on the platform.
    architecture: ``'conv'`` (the networks above) or ``'mlp'`` (``MLPEncoder`` and
      ``MLPDecoder`` with ``mlp_widths``: the IWAE paper's model, ``configs/iwae_mnist.py``).
    mlp_widths: hidden widths of the ``'mlp'`` networks.
    image_shape: ``(H, W, C)`` of the images, the data set's (``DatasetInfo.image_shape``).
  """

  latent_dim: int = 2
  channels: Sequence[int] = (32, 64)
  hidden: int = 16
  upsample: str = "conv_transpose"
  conv_impl: str = "auto"
  architecture: str = "conv"
  mlp_widths: Sequence[int] = (200, 200)
  image_shape: Sequence[int] = (28, 28, 1)

  def setup(self):
    shape = tuple(self.image_shape)
    if self.architecture == "mlp":
      self.encoder = MLPEncoder(self.latent_dim, tuple(self.mlp_widths))
      self.decoder = MLPDecoder(tuple(self.mlp_widths), shape)
      return
    self.encoder = ConvEncoder(self.latent_dim, tuple(self.channels), self.hidden,
                               self.conv_impl)
    self.decoder = ConvDecoder(tuple(self.channels), self.upsample, conv_impl=self.conv_impl,
                               image_shape=shape)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """float ``[B, H, W, C]`` (``image_shape``) in [0, 1] → ``(z_mean, z_logvar)`` float
    ``[B, latent_dim]``."""
    return self.encoder(x)

  def decode(self, z: jax.Array) -> jax.Array:
    """float ``[B, latent_dim]`` → logits float ``[B, H, W, C]`` (``image_shape``)."""
    return self.decoder(z)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """float ``[B, H, W, C]`` in [0, 1] → ``(logits, z_mean, z_logvar)``."""
    z_mean, z_logvar = self.encode(x)
    eps = jax.random.normal(self.make_rng("latent"), z_mean.shape, z_mean.dtype)
    z = z_mean + jnp.exp(0.5 * z_logvar) * eps
    return self.decode(z), z_mean, z_logvar
