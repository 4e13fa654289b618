"""Convolutions whose gradients are fast on XLA:CPU: the same functions, other programs.

XLA:CPU computes a convolution's forward pass well but some of its gradients badly: the
kernel gradient of a transposed convolution (a convolution with ``lhs_dilation``) and of a
convolution with one output channel, and the input gradient of a strided convolution
(jax-ml/jax#23783, #31662). ``impl='matmul'`` computes those pieces as matrix products
over shifted or strided views of the activations (im2col), exactly the same function of
the same parameters; ``impl='xla'`` leaves every convolution and its autodiff gradient to
XLA (cuDNN on GPUs). ``'auto'`` picks ``'matmul'`` on CPU and ``'xla'`` elsewhere.

Measured on a 2-core CPU (jax 0.10.2, batch 128, one layer's forward + gradient in its
input and kernel, ms, means of 20 calls; docs/speed.md has the whole-step
numbers from ``benchmarks/compare.py``):

=====================================  ======  ======  =========================
layer of the β-VAE                     xla     matmul  matmul form
=====================================  ======  ======  =========================
conv 1→32, stride 2, 28×28             3.9     2.1     custom VJP, im2col kernel grad
conv 32→64, stride 2, 14×14            12.3    6.8     im2col, autodiff
transposed conv 64→64, 7×7 → 14×14     211     ~17     custom VJP, matmul kernel grad
transposed conv 64→32, 14×14 → 28×28   821     ~46     custom VJP, matmul kernel grad
conv 32→1, 28×28 (the logits)          31      10.4    matmul, then 9 shifted sums
=====================================  ======  ======  =========================

Stride-1 convolutions with many output channels (the classifier's) stay XLA's in both:
none of these forms was faster there.

``'matmul'`` also runs a conv trunk over the batch in chunks of ``CHUNK`` examples
(``over_batch_chunks``): XLA:CPU's memory-bound fusions (bias, ReLU, pads, the kernel
gradients' views) then work on cache-sized arrays. The β-VAE's gradient at batch 128:
102–108 ms whole, 83–91 ms in chunks of 32 or 16 (same run, same CPU).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from kjax import errors

IMPLS = ("auto", "xla", "matmul")
_DN = ("NHWC", "HWIO", "NHWC")


def resolve_impl(impl: str) -> str:
  """``'auto'`` → ``'matmul'`` on the CPU backend, ``'xla'`` on GPU/TPU; others as given.

  Raises:
    ConfigError: ``impl`` is not one of ``IMPLS``.
  """
  if impl not in IMPLS:
    raise errors.ConfigError(f"config.model.conv_impl={impl!r} is not one of {IMPLS}")
  if impl == "auto":
    return "matmul" if jax.default_backend() == "cpu" else "xla"
  return impl


# Examples per chunk of a training batch under 'matmul', an unrolled loop of at most
# MAX_CHUNKS chunks (measured, gradient at batch 128, ms, whole / 64 / 32 / 16: β-VAE
# 102 / 93 / 91 / 83, classifier 182 / 142 / 106 / 87; 16 compiles the β-VAE step in
# 8.9 s against 6.4 s for 32, within the 10 s budget of a program).
CHUNK = 16
MAX_CHUNKS = 16
# A larger batch (evaluation, IWAE, sampling: forward only) is a lax.map over chunks of
# MAP_CHUNK (the conv decoder's forward at batch 2000 ran at 1,970 images/s whole and at
# 5,720 / 5,410 / 5,030 / 3,030 images/s in chunks of 32 / 64 / 128 / 256; issue 27,
# medians of 5 alternated: 8,470 / 9,390 / 8,910 in chunks of 32 / 16 / 8).
MAP_CHUNK = 16


def over_batch_chunks(fn, x: jax.Array, impl: str):
  """``fn(x)`` for a per-example function ``fn`` of float ``[B, ...]``, computed over
  chunks of the batch under ``'matmul'`` (module docstring) and whole under ``'xla'``;
  the same values either way. ``fn`` may return a tuple of ``[B, ...]`` arrays.
  """
  b = x.shape[0]
  n = -(-b // CHUNK)
  if resolve_impl(impl) == "xla" or n <= 1:
    return fn(x)
  if n > MAX_CHUNKS:
    m = -(-b // MAP_CHUNK)
    padded = jnp.pad(x, ((0, m * MAP_CHUNK - b),) + ((0, 0),) * (x.ndim - 1))
    out = jax.lax.map(fn, padded.reshape(m, MAP_CHUNK, *x.shape[1:]))
    return jax.tree.map(lambda a: a.reshape(m * MAP_CHUNK, *a.shape[2:])[:b], out)
  bounds = [b * i // n for i in range(n + 1)]
  outs = [fn(x[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
  return jax.tree.map(lambda *parts: jnp.concatenate(parts), *outs)


def batch_chunks(impl: str) -> dict[str, int] | None:
  """Examples per chunk of a conv trunk's batch under ``impl`` (None: whole batches)."""
  if resolve_impl(impl) == "xla":
    return None
  return {"train_chunk": CHUNK, "max_unrolled": MAX_CHUNKS, "forward_chunk": MAP_CHUNK}


def _same_pads(size: int, k: int, stride: int) -> tuple[int, tuple[int, int]]:
  """'SAME' output size and (low, high) padding, as XLA computes them."""
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return out, (total // 2, total - total // 2)


def _conv_xla(x, kernel, stride):
  return lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=_DN)


def _patches(x: jax.Array, kh: int, kw: int, stride: int) -> jax.Array:
  """im2col: float ``[B, H, W, C]`` → ``[B, Ho, Wo, kh·kw·C]``, the 'SAME' windows of a
  ``stride`` convolution, taps in row-major (HWIO) order."""
  _, h, w, _ = x.shape
  ho, (plo, phi) = _same_pads(h, kh, stride)
  wo, (qlo, qhi) = _same_pads(w, kw, stride)
  xp = jnp.pad(x, ((0, 0), (plo, phi), (qlo, qhi), (0, 0)))
  return jnp.concatenate(
      [xp[:, ty:ty + (ho - 1) * stride + 1:stride, tx:tx + (wo - 1) * stride + 1:stride]
       for ty in range(kh) for tx in range(kw)], -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_kernel_grad_im2col(x, kernel, stride):
  """XLA's convolution and input gradient; the kernel gradient as ``patches(x)ᵀ · dy``."""
  return _conv_xla(x, kernel, stride)


def _conv_fwd(x, kernel, stride):
  return _conv_xla(x, kernel, stride), (x, kernel)


def _conv_bwd(stride, residuals, dy):
  x, kernel = residuals
  kh, kw, c_in, c_out = kernel.shape
  dx = jax.vjp(lambda x: _conv_xla(x, kernel, stride), x)[1](dy)[0]
  p = _patches(x, kh, kw, stride).reshape(-1, kh * kw * c_in)
  return dx, (p.T @ dy.reshape(-1, c_out)).reshape(kernel.shape)


_conv_kernel_grad_im2col.defvjp(_conv_fwd, _conv_bwd)


def _conv_matmul_shift(x, kernel):
  """Stride-1 'SAME' convolution as one matmul to every tap's output, then the taps'
  shifted sum: cheap when C_out is small (the logits layer: 9 · 1 channels)."""
  b, h, w, c_in = x.shape
  kh, kw, _, c_out = kernel.shape
  _, (plo, phi) = _same_pads(h, kh, 1)
  _, (qlo, qhi) = _same_pads(w, kw, 1)
  u = x.reshape(-1, c_in) @ kernel.transpose(2, 0, 1, 3).reshape(c_in, kh * kw * c_out)
  u = jnp.pad(u.reshape(b, h, w, kh, kw, c_out),
              ((0, 0), (plo, phi), (qlo, qhi), (0, 0), (0, 0), (0, 0)))
  # y[i, j] = Σ_t x[i + ty - plo, j + tx - qlo] K[t] = Σ_t u_padded[i + ty, j + tx, t]
  return sum(u[:, ty:ty + h, tx:tx + w, ty, tx] for ty in range(kh) for tx in range(kw))


SPECTRAL_NORM_ITERATIONS = 10


def spectral_normalize(kernel: jax.Array, iterations: int = SPECTRAL_NORM_ITERATIONS
                       ) -> jax.Array:
  """``kernel / σ(W)``: spectral normalisation (Miyato et al. 2018, "Spectral Normalization
  for Generative Adversarial Networks", Eq. 8), W the kernel as a matrix
  ``[prod(shape[:-1]), shape[-1]]`` (a conv kernel's HWI × O reshaping, as theirs).

  σ(W) = uᵀ W v by ``iterations`` power iterations from a fixed unit vector, with u and v
  held constant for the gradient (their Algorithm 1). Stateless: where Miyato et al. carry
  u from step to step and do one iteration, this redoes 10 from the start at each call
  (matrix–vector products, far below a batch's matrix products), so the estimate is from
  below and converges as (σ₂/σ₁)^20: exact to 1e-3 where σ₂ ≤ 0.7 σ₁, about 2% high after
  the division for a random initial kernel, whose leading singular values are close.

  Args:
    kernel: float ``[..., C_out]``, at least 2-D.

  Returns:
    float, ``kernel``'s shape and dtype, of spectral norm ≈ 1.
  """
  w = kernel.reshape(-1, kernel.shape[-1])

  def normalize(a):
    return a / (jnp.linalg.norm(a) + 1e-12)

  def body(_, v):
    return normalize(w.T @ normalize(w @ v))

  v = jax.lax.fori_loop(0, iterations, body,
                        jnp.full((w.shape[1],), w.shape[1] ** -0.5, w.dtype))
  v = jax.lax.stop_gradient(v)
  u = jax.lax.stop_gradient(normalize(w @ v))
  return kernel / (u @ w @ v)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, impl: str = "auto") -> jax.Array:
  """A 'SAME' convolution, as ``flax.linen.Conv`` (no bias).

  Args:
    x: float ``[B, H, W, C_in]``.
    kernel: float ``[kh, kw, C_in, C_out]`` (HWIO).
    stride: both spatial strides.
    impl: ``'auto'`` | ``'xla'`` | ``'matmul'`` (module docstring).

  Returns:
    float ``[B, ceil(H / stride), ceil(W / stride), C_out]``.
  """
  c_in, c_out = kernel.shape[2], kernel.shape[3]
  if resolve_impl(impl) == "xla":
    return _conv_xla(x, kernel, stride)
  if stride == 1 and c_out <= 4:
    return _conv_matmul_shift(x, kernel)
  if stride > 1 and c_in > 1:
    kh, kw = kernel.shape[:2]
    return _patches(x, kh, kw, stride) @ kernel.reshape(kh * kw * c_in, c_out)
  if c_in == 1:
    return _conv_kernel_grad_im2col(x, kernel, stride)
  return _conv_xla(x, kernel, stride)


# For a 3-tap, stride-2, 'SAME' transposed convolution (lax.conv_transpose), output row
# 2m + a reads input row m - 1 + u (u = 0, 1) through kernel tap _TAP[a][u]; tap 3 is a
# zero pad. Derivation: the transposed conv dilates the input by 2 and pads it by 2 on each
# side, so y[o] = sum_t K[t] x[(o + t - 2) / 2] over the t that make the index integral.
TAP = ((0, 2), (3, 1))
# Tap t → (a, u): the output phase it writes and the input shift it reads.
_PHASE = {TAP[a][u]: (a, u) for a in (0, 1) for u in (0, 1) if TAP[a][u] != 3}


def _conv_transpose_xla(x, kernel):
  return lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=_DN)


@jax.custom_vjp
def _conv_transpose_matmul_grad(x, kernel):
  """XLA's transposed convolution and input gradient; the kernel gradient as nine
  matmuls ``x[shifted]ᵀ · dy[phase]`` (module docstring)."""
  return _conv_transpose_xla(x, kernel)


def _convt_fwd(x, kernel):
  return _conv_transpose_xla(x, kernel), (x, kernel)


def _convt_bwd(residuals, dy):
  x, kernel = residuals
  b, h, w, c_in = x.shape
  c_out = kernel.shape[-1]
  dx = jax.vjp(lambda x: _conv_transpose_xla(x, kernel), x)[1](dy)[0]
  phases = dy.reshape(b, h, 2, w, 2, c_out)  # dy[2m + a, 2n + c] = phases[:, m, a, n, c]
  xf = x.reshape(-1, c_in).T
  taps = []
  for ty in range(3):
    a, u = _PHASE[ty]
    for tx in range(3):
      c, v = _PHASE[tx]
      # x[m] meets dy[2(m + 1 - u) + a]: the phase shifted by 1 - u rows (zero past the end).
      d = jnp.pad(phases[:, :, a, :, c, :], ((0, 0), (0, 1), (0, 1), (0, 0)))
      taps.append(xf @ d[:, 1 - u:1 - u + h, 1 - v:1 - v + w].reshape(-1, c_out))
  return dx, jnp.stack(taps).reshape(3, 3, c_in, c_out)


_conv_transpose_matmul_grad.defvjp(_convt_fwd, _convt_bwd)


def conv_transpose2x(x: jax.Array, kernel: jax.Array, impl: str = "auto") -> jax.Array:
  """A 3×3, stride-2, 'SAME' transposed convolution (``lax.conv_transpose``, as
  ``flax.linen.ConvTranspose``; no bias).

  Args:
    x: float ``[B, H, W, C_in]``.
    kernel: float ``[3, 3, C_in, C_out]`` (HWIO).
    impl: ``'auto'`` | ``'xla'`` | ``'matmul'``.

  Returns:
    float ``[B, 2H, 2W, C_out]``.

  Raises:
    ValueError: ``kernel`` is not 3×3.
  """
  if kernel.shape[:2] != (3, 3):
    raise ValueError(f"kernel shape {kernel.shape} is not [3, 3, C_in, C_out]")
  if resolve_impl(impl) == "xla":
    return _conv_transpose_xla(x, kernel)
  return _conv_transpose_matmul_grad(x, kernel)


class Conv(nn.Module):
  """``flax.linen.Conv`` with 'SAME' padding, computed by ``conv2d`` (same parameters:
  ``kernel`` ``[kh, kw, C_in, features]`` LeCun-normal, ``bias`` zeros; the class name
  keeps Flax's automatic names ``Conv_0``, ``Conv_1`` … of existing checkpoints).

  Attributes:
    features: output channels.
    kernel_size: ``(kh, kw)``.
    strides: ``(s, s)``.
    impl: ``'auto'`` | ``'xla'`` | ``'matmul'``.
    spectral_norm: divide the kernel by its spectral norm (``spectral_normalize``).
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  impl: str = "auto"
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """float ``[B, H, W, C_in]`` → float ``[B, ceil(H / s), ceil(W / s), features]``."""
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    if self.spectral_norm:
      kernel = spectral_normalize(kernel)
    return conv2d(x, kernel, self.strides[0], self.impl) + bias
