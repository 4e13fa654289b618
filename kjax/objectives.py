"""VAE and GAN objectives.

VAE terms (the β-VAE family of ``VAE_OBJECTIVES``) are written per example (sums over
pixels / latent dimensions; means come last), in nats per image. GAN losses are batch
means (as Shyam (2024), "Conditional Generation with VAE and GAN", reports them).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from kjax import errors

LIKELIHOODS = ("bernoulli", "gaussian")


def bernoulli_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
  """−log p(x | z) of a per-pixel Bernoulli decoder, summed over pixels.

  ``sum_i softplus(l_i) − x_i l_i`` = ``−sum_i [x_i log σ(l_i) + (1 − x_i) log(1 − σ(l_i))]``,
  the binary cross-entropy of the Keras example and of Islam's "Beyond Pixels" β-VAE tutorial,
  computed stably from logits. Targets are the grey levels x in [0, 1] (not binarised), as in
  the source documents.

  Args:
    logits: float ``[..., H, W, C]`` decoder logits.
    x: float, same shape, targets in [0, 1].

  Returns:
    float ``[...]``, nats per image.
  """
  logits = logits.reshape(*logits.shape[:-3], -1)  # one pixel axis: XLA:CPU reduces [..., H,
  x = x.reshape(*x.shape[:-3], -1)                 # W, 1] 3x slower than [..., H·W]
  return (softplus(logits) - x * logits).sum(-1)


@jax.custom_jvp
def softplus(logits: jax.Array) -> jax.Array:
  """``log(1 + exp(l))``, float ``[...]`` → float ``[...]``: ``jax.nn.softplus`` bit for bit
  on finite inputs, values and gradients, at ~2.5× its speed on XLA:CPU (measured for issue
  27: 0.65 against 1.63 ns per element), since it leaves out ``jnp.logaddexp``'s NaN select.

  ``max(l, 0) + log1p(exp(−|l|))``; the tangent is ``jnp.logaddexp(l, 0)``'s,
  ``t · exp(l − softplus(l))`` = σ(l) t.
  """
  return jnp.maximum(logits, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(logits)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
  (logits,), (tangent,) = primals, tangents
  out = softplus(logits)
  return out, tangent * jnp.exp(logits - out)


def gaussian_nll(logits: jax.Array, x: jax.Array, variance: float | jax.Array) -> jax.Array:
  """−log N(x; sigmoid(logits), variance·I), summed over pixels (the MSE loss of Ahmed
  (2025), "Generative AI Theory & Applications Report 1: Variational Autoencoders", §1.3).

  ``sum_i (x_i − μ_i)² / (2 variance) + ½ log(2π variance)`` with μ = sigmoid(logits) in
  [0, 1]. With ``variance = 0.5`` the data term is Ahmed (2025)'s summed squared error plus the
  constant 784 · ½ log π (H · W · C · ½ log π for images of another size).

  Args:
    logits: float ``[..., H, W, C]``; the decoder mean is their sigmoid.
    x: float, same shape, in [0, 1].
    variance: σ² of the fixed, isotropic observation noise (> 0).

  Returns:
    float ``[...]``, nats per image (a density: it can be negative).
  """
  logits, x = logits.reshape(*logits.shape[:-3], -1), x.reshape(*x.shape[:-3], -1)
  sq = jnp.square(x - jax.nn.sigmoid(logits))  # on one pixel axis, as bernoulli_nll
  return sq.sum(-1) / (2 * variance) + sq.shape[-1] * 0.5 * jnp.log(2 * math.pi * variance)


def kl_standard_normal(z_mean: jax.Array, z_logvar: jax.Array) -> jax.Array:
  """KL(N(z_mean, exp(z_logvar)) ‖ N(0, I)) in closed form (Kingma & Welling 2014, App. B).

  ``½ sum_d (exp(z_logvar_d) + z_mean_d² − 1 − z_logvar_d)``.

  Args:
    z_mean, z_logvar: float ``[..., latent_dim]``.

  Returns:
    float ``[...]``, nats per image.
  """
  return 0.5 * jnp.sum(jnp.exp(z_logvar) + jnp.square(z_mean) - 1.0 - z_logvar, axis=-1)


def reconstruction_nll(logits: jax.Array, x: jax.Array, likelihood: str,
                       gaussian_variance: float = 0.5) -> jax.Array:
  """Dispatches to ``bernoulli_nll`` or ``gaussian_nll``; float ``[...]`` nats per image.

  Raises:
    ConfigError: unknown ``likelihood``.
  """
  if likelihood == "bernoulli":
    return bernoulli_nll(logits, x)
  if likelihood == "gaussian":
    return gaussian_nll(logits, x, gaussian_variance)
  raise errors.ConfigError(f"config.objective.likelihood={likelihood!r} is not one of {LIKELIHOODS}")


def beta_vae_terms(logits: jax.Array, x: jax.Array, z_mean: jax.Array, z_logvar: jax.Array,
                   beta: float | jax.Array, likelihood: str = "bernoulli",
                   gaussian_variance: float = 0.5) -> dict[str, jax.Array]:
  """Per-example β-VAE objective, Eq. 4 of Higgins et al. 2017 (negated, to minimise).

  ``loss = rec + β · kl``; ``nelbo = rec + kl`` is the negative ELBO (β = 1), comparable
  across β.

  Args:
    logits: float ``[B, H, W, C]``; x: float ``[B, H, W, C]`` in [0, 1];
    z_mean, z_logvar: float ``[B, latent_dim]``; beta: scalar ≥ 0.

  Returns:
    ``{'loss', 'rec', 'kl', 'nelbo'}``, each float ``[B]`` in nats per image.
  """
  rec = reconstruction_nll(logits, x, likelihood, gaussian_variance)
  kl = kl_standard_normal(z_mean, z_logvar)
  return {"loss": rec + beta * kl, "rec": rec, "kl": kl, "nelbo": rec + kl}


# --- The β-VAE family (``config.objective.name``) ---------------------------------------

VAE_OBJECTIVES = ("beta_vae", "beta_tc_vae", "annealed_vae")


def linear_warmup(step: jax.Array, warmup_steps: float | jax.Array) -> jax.Array:
  """The KL warm-up weight ``min(1, step / warmup_steps)`` (Bowman et al. 2016, "KL cost
  annealing"; Sønderby et al. 2016, "warm-up"); 1 when ``warmup_steps`` is 0 (no warm-up).

  Args:
    step: int or float ``[]``, the number of updates already made (0 for the first).
    warmup_steps: ``[]`` ≥ 0, the number of steps over which the weight rises from 0 to 1.

  Returns:
    float32 ``[]`` in [0, 1].
  """
  step = jnp.asarray(step, jnp.float32)
  warmup_steps = jnp.asarray(warmup_steps, jnp.float32)
  on = warmup_steps > 0
  return jnp.where(on, jnp.minimum(1.0, step / jnp.where(on, warmup_steps, 1.0)), 1.0)


def annealed_capacity(step: jax.Array, c_max: float | jax.Array,
                      c_steps: float | jax.Array) -> jax.Array:
  """The capacity ``C = c_max · min(1, step / c_steps)`` of Burgess et al. 2018 §5, raised
  linearly from 0 nats to ``c_max`` over ``c_steps`` updates, then held.

  Args:
    step: int or float ``[]``, the number of updates already made (0 for the first).
    c_max: ``[]`` ≥ 0, nats per image. c_steps: ``[]`` ≥ 1.

  Returns:
    float32 ``[]``, nats per image.
  """
  step = jnp.asarray(step, jnp.float32)
  return jnp.asarray(c_max, jnp.float32) * jnp.minimum(
      1.0, step / jnp.asarray(c_steps, jnp.float32))


def gaussian_log_density(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """``log N(z; mean, exp(logvar))`` per coordinate (no sum), broadcasting its arguments."""
  return -0.5 * (math.log(2 * math.pi) + logvar + jnp.square(z - mean) * jnp.exp(-logvar))


def mws_total_correlation(z: jax.Array, z_mean: jax.Array, z_logvar: jax.Array,
                          num_train_examples: int, mask: jax.Array | None = None
                          ) -> jax.Array:
  """Total correlation ``TC_i = log q(z_i) − log prod_d q(z_id)`` of the aggregate posterior
  at each example's sample, by minibatch-weighted sampling (Chen et al. 2018, §4.1 and
  App. C.1; their code's ``mss=False``):

  ``log q(z_i) ≈ logsumexp_j log q(z_i | x_j) − log(N M)`` and
  ``log q(z_id) ≈ logsumexp_j log q(z_id | x_j) − log(N M)``, with j over the M examples
  of the batch and N the size of the data set.

  The batch mean is the estimate of TC = KL(q(z) ‖ prod_d q(z_d)). The estimator is
  biased, and its bias does not vanish as M grows: when every posterior in the batch is
  the same factorised Gaussian (true TC = 0) each term comes out exactly
  ``(latent_dim − 1) · log N``. The offset does not depend on the parameters, so the
  gradients are those of the batch-aggregate TC; but reported values are not ≈ 0 for a
  factorised code (``latent_dim`` = 10, N = 60,000: ≈ 99 nats).

  Args:
    z: float ``[B, latent_dim]``, z_i ~ q(z | x_i) (reparameterised, for gradients).
    z_mean, z_logvar: float ``[B, latent_dim]`` of q(z | x_j).
    num_train_examples: N, the size of the train split (> 0).
    mask: optional bool ``[B]``: only the rows j with ``mask[j]`` enter the sums (M =
      their number), for padded evaluation batches. Masked rows i get values too; ignore them.

  Returns:
    float ``[B]``, nats per image.
  """
  # log q(z_i,d | x_j): [B_i, B_j, latent_dim].
  log_q = gaussian_log_density(z[:, None, :], z_mean[None, :, :], z_logvar[None, :, :])
  if mask is None:
    m = jnp.asarray(z.shape[0], jnp.float32)
  else:
    log_q = jnp.where(mask[None, :, None], log_q, -jnp.inf)
    m = mask.sum().astype(jnp.float32)
  log_nm = math.log(num_train_examples) + jnp.log(m)
  log_qz = jax.nn.logsumexp(log_q.sum(-1), axis=1) - log_nm
  log_prod_qzd = (jax.nn.logsumexp(log_q, axis=1) - log_nm).sum(-1)
  return log_qz - log_prod_qzd


def beta_tc_vae_terms(logits: jax.Array, x: jax.Array, z_mean: jax.Array, z_logvar: jax.Array,
                      z: jax.Array, beta: float | jax.Array, num_train_examples: int,
                      likelihood: str = "bernoulli", gaussian_variance: float = 0.5,
                      kl_weight: float | jax.Array = 1.0, mask: jax.Array | None = None
                      ) -> dict[str, jax.Array]:
  """Per-example β-TCVAE objective (Chen et al. 2018, Eq. 4 with α = γ = 1), to minimise.

  KL(q(z|x) ‖ p(z)) averaged over the data splits into index-code mutual information + total
  correlation + dimension-wise KL (their Eq. 2); only the TC gets weight β:
  ``loss = rec + w · (kl + (β − 1) · tc)``, with the closed-form ``kl`` and the MWS
  estimate ``tc`` (``mws_total_correlation``), and ``w`` the KL warm-up weight (1 = none).
  With β = 1 and w = 1 the loss equals ``nelbo`` exactly.

  Args:
    logits: float ``[B, H, W, C]``; x: float ``[B, H, W, C]`` in [0, 1];
    z_mean, z_logvar: float ``[B, latent_dim]``; z: float ``[B, latent_dim]``, a
      reparameterised sample of q(z | x) (for the TC estimate); beta: scalar ≥ 0;
    num_train_examples: N of the MWS estimator; kl_weight: scalar in [0, 1];
    mask: optional bool ``[B]`` of the real rows (``mws_total_correlation``).

  Returns:
    ``{'loss', 'rec', 'kl', 'nelbo', 'tc'}``, each float ``[B]`` in nats per image.
  """
  rec = reconstruction_nll(logits, x, likelihood, gaussian_variance)
  kl = kl_standard_normal(z_mean, z_logvar)
  tc = mws_total_correlation(z, z_mean, z_logvar, num_train_examples, mask)
  return {"loss": rec + kl_weight * (kl + (beta - 1.0) * tc), "rec": rec, "kl": kl,
          "nelbo": rec + kl, "tc": tc}


def annealed_vae_terms(logits: jax.Array, x: jax.Array, z_mean: jax.Array,
                       z_logvar: jax.Array, gamma: float | jax.Array,
                       capacity: float | jax.Array, likelihood: str = "bernoulli",
                       gaussian_variance: float = 0.5) -> dict[str, jax.Array]:
  """Per-example objective of the capacity-annealed β-VAE (Burgess et al. 2018, Eq. 8):
  ``loss = rec + γ · |kl − C|``.

  Args:
    logits: float ``[B, H, W, C]``; x: float ``[B, H, W, C]`` in [0, 1];
    z_mean, z_logvar: float ``[B, latent_dim]``; gamma: scalar ≥ 0;
    capacity: scalar C in nats (``annealed_capacity``).

  Returns:
    ``{'loss', 'rec', 'kl', 'nelbo', 'capacity'}``, each float ``[B]`` in nats per image
    (``capacity`` is C repeated per example).
  """
  rec = reconstruction_nll(logits, x, likelihood, gaussian_variance)
  kl = kl_standard_normal(z_mean, z_logvar)
  return {"loss": rec + gamma * jnp.abs(kl - capacity), "rec": rec, "kl": kl,
          "nelbo": rec + kl, "capacity": jnp.broadcast_to(capacity, rec.shape).astype(rec.dtype)}


# --- Conditional GAN objectives (Shyam (2024) §4.3; hinge and WGAN-GP as its "future work") ---

GAN_LOSSES = ("bce", "hinge", "wgan_gp")


def gan_d_loss(real_logits: jax.Array, fake_logits: jax.Array, loss: str,
               label_smoothing: float | jax.Array = 0.0) -> jax.Array:
  """The discriminator's (critic's) loss per (real, fake) pair, without gradient penalty.

  The batch mean is the loss that is minimised:

  * ``'bce'``: ``½ [BCE(D(x), 1 − s) + BCE(D(G(z)), 0)]``, Shyam (2024)'s averaged BCE
    (Goodfellow et al. 2014, Eq. 1, negated), with one-sided label smoothing ``s``
    (Salimans et al. 2016 §3.4): only the real targets are softened.
  * ``'hinge'``: ``relu(1 − D(x)) + relu(1 + D(G(z)))`` (Lim & Ye 2017; Miyato et al. 2018).
  * ``'wgan_gp'``: ``D(G(z)) − D(x)``, the critic loss of Gulrajani et al. 2017 (Alg. 1);
    add ``gp_weight · gradient_penalty`` to its mean.

  Args:
    real_logits, fake_logits: float ``[B]`` discriminator outputs (logits for ``'bce'``).
    loss: one of ``GAN_LOSSES``.
    label_smoothing: ``s`` in [0, 1), ``'bce'`` only.

  Returns:
    float ``[B]``.

  Raises:
    ConfigError: unknown ``loss``.
  """
  if loss == "bce":
    real_target = jnp.full_like(real_logits, 1.0) - label_smoothing
    return 0.5 * (optax.sigmoid_binary_cross_entropy(real_logits, real_target)
                  + optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits)))
  if loss == "hinge":
    return jax.nn.relu(1.0 - real_logits) + jax.nn.relu(1.0 + fake_logits)
  if loss == "wgan_gp":
    return fake_logits - real_logits
  raise errors.ConfigError(f"config.objective.loss={loss!r} is not one of {GAN_LOSSES}")


def gan_g_loss(fake_logits: jax.Array, loss: str) -> jax.Array:
  """The generator's loss per sample: the non-saturating ``BCE(D(G(z)), 1) = −log σ(D(G(z)))``
  for ``'bce'`` (Goodfellow et al. 2014 §3), ``−D(G(z))`` for ``'hinge'`` and ``'wgan_gp'``.

  Args:
    fake_logits: float ``[B]``; loss: one of ``GAN_LOSSES``.

  Returns:
    float ``[B]``; its batch mean is minimised.

  Raises:
    ConfigError: unknown ``loss``.
  """
  if loss == "bce":
    return optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits))
  if loss in ("hinge", "wgan_gp"):
    return -fake_logits
  raise errors.ConfigError(f"config.objective.loss={loss!r} is not one of {GAN_LOSSES}")


def gradient_penalty(critic, real: jax.Array, fake: jax.Array, key: jax.Array) -> jax.Array:
  """WGAN-GP's penalty ``E[(‖∇_x̂ D(x̂)‖₂ − 1)²]`` at ``x̂ = ε x + (1 − ε) G(z)``,
  ``ε ~ U[0, 1]`` per example (Gulrajani et al. 2017, Eq. 3).

  Args:
    critic: float ``[B, H, W, C]`` → float ``[B]`` (the discriminator with its
      parameters and conditioning bound).
    real, fake: float ``[B, H, W, C]``, in the generator's output range.
    key: PRNG key for ε.

  Returns:
    float ``[]``.
  """
  eps = jax.random.uniform(key, (real.shape[0], 1, 1, 1), real.dtype)
  x_hat = eps * real + (1.0 - eps) * fake
  grads = jax.grad(lambda x: critic(x).sum())(x_hat)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))
