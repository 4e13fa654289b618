"""The conditional GAN: shapes, losses, disjoint updates, vmap, determinism and resume."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cgan as cgan_config
from kjax import errors, experiment, objectives, tasks, validation
from kjax.models import cgan, conv
from tests.conftest import Killed, die_after_save, latest_checkpoint_state, on_real_kmnist


def _inputs(n, num_classes, latent_dim=64, seed=0):
  k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
  return (jax.random.normal(k1, (n, latent_dim)), jax.random.randint(k2, (n,), 0, num_classes),
          jax.random.randint(k3, (n,), 0, 2), jax.random.uniform(k4, (n, 28, 28, 1)))


@pytest.mark.parametrize("architecture", cgan.ARCHITECTURES)
@pytest.mark.parametrize("output", cgan.OUTPUTS)
@pytest.mark.parametrize("num_classes", [10, 49])
def test_shapes_ranges_and_conditioning(architecture, output, num_classes):
  z, labels, styles, x = _inputs(5, num_classes)
  g = cgan.Generator(num_classes, architecture, output, hidden=32, channels=(8, 16))
  d = cgan.Discriminator(num_classes, architecture, hidden=32, channels=(8, 16))
  g_vars = g.init(jax.random.key(1), z, labels, styles)
  d_vars = d.init(jax.random.key(2), x, labels, styles)
  images = g.apply(g_vars, z, labels, styles)
  assert images.shape == (5, 28, 28, 1) and images.dtype == jnp.float32
  low = -1.0 if output == "tanh" else 0.0
  assert float(images.min()) >= low and float(images.max()) <= 1.0
  scores = d.apply(d_vars, images, labels, styles)
  assert scores.shape == (5,)
  # Both networks see the class and the style.
  for other_labels, other_styles in (((labels + 1) % num_classes, styles), (labels, 1 - styles)):
    assert not np.allclose(g.apply(g_vars, z, other_labels, other_styles), images)
    assert not np.allclose(d.apply(d_vars, images, other_labels, other_styles), scores)
  # Shyam (2024)'s MLP sizes: G (64 + C + 2) → 256 → 784, D (784 + C + 2) → 256 → 1.
  if architecture == "mlp":
    g_seed = cgan.Generator(num_classes, "mlp", output).init(jax.random.key(1), z, labels, styles)
    shapes = [p.shape for p in jax.tree.leaves(g_seed)]
    assert (64 + num_classes + 2, 256) in shapes and (256, 784) in shapes


def test_bce_loss_with_one_sided_smoothing():
  real, fake = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
  bce = lambda logit, t: -(t * jax.nn.log_sigmoid(logit) + (1 - t) * jax.nn.log_sigmoid(-logit))  # noqa: E731
  expected = 0.5 * (bce(real, 0.9) + bce(fake, 0.0))
  np.testing.assert_allclose(objectives.gan_d_loss(real, fake, "bce", 0.1), expected, rtol=1e-6)
  np.testing.assert_allclose(objectives.gan_g_loss(fake, "bce"), bce(fake, 1.0), rtol=1e-6)
  np.testing.assert_allclose(objectives.gan_d_loss(real, fake, "hinge"),
                             [0.0 + 1.5, 2.0 + 0.0], rtol=1e-6)
  np.testing.assert_allclose(objectives.gan_d_loss(real, fake, "wgan_gp"), fake - real)
  np.testing.assert_allclose(objectives.gan_g_loss(fake, "hinge"), -fake)


def test_gradient_penalty_of_a_linear_critic_is_exact():
  """D(x) = <w, x> has ‖∇D‖ = ‖w‖ everywhere, so the penalty is (‖w‖ − 1)²."""
  w = jax.random.normal(jax.random.key(0), (28, 28, 1))
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))  # noqa: E731
  _, _, _, real = _inputs(4, 10)
  gp = objectives.gradient_penalty(critic, real, real[::-1], jax.random.key(1))
  np.testing.assert_allclose(gp, (jnp.linalg.norm(w) - 1.0) ** 2, rtol=1e-5)


def _config(loss="bce", d_steps=1):
  config = cgan_config.get_config()
  config.data.name = "kmnist"
  config.model.hidden = 32
  config.model.latent_dim = 8
  config.objective.loss = loss
  config.objective.d_steps = d_steps
  return config


def _batch(n=16, seed=3):
  _, labels, styles, x = _inputs(n, 10, seed=seed)
  return {"images": (x * 255).astype(jnp.uint8), "labels": labels, "styles": styles}


@pytest.mark.parametrize("loss, d_steps", [("bce", 1), ("hinge", 2), ("wgan_gp", 2)])
def test_each_network_moves_only_through_its_own_optimiser(loss, d_steps):
  task = tasks.get_task(_config(loss, d_steps), None)
  key = jax.random.key(0)
  step = jax.jit(task.train_step)
  frozen_g = task.init_state(key, g_learning_rate=0.0)
  frozen_d = task.init_state(key, d_learning_rate=0.0)
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731

  new, metrics = step(frozen_g, _batch(), jax.random.key(1))
  assert same(new.generator.params, frozen_g.generator.params)
  assert not same(new.discriminator.params, frozen_g.discriminator.params)
  assert int(new.discriminator.step) == d_steps and int(new.step) == 1
  assert set(metrics) == set(task.train_metrics)
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values())

  new, _ = step(frozen_d, _batch(), jax.random.key(1))
  assert same(new.discriminator.params, frozen_d.discriminator.params)
  assert not same(new.generator.params, frozen_d.generator.params)


def test_gan_step_is_vmappable_over_runs():
  """A sweep over (G, D) learning rates in one program equals the runs one by one."""
  task = tasks.get_task(_config(), None)
  lrs = jnp.array([1e-4, 1e-3])
  states = jax.vmap(lambda k, lr: task.init_state(k, g_learning_rate=lr, d_learning_rate=lr))(
      jax.random.split(jax.random.key(0), 2), lrs)
  batches = jax.tree.map(lambda a, b: jnp.stack([a, b]), _batch(seed=3), _batch(seed=4))
  keys = jax.random.split(jax.random.key(5), 2)
  new, metrics = jax.jit(jax.vmap(task.train_step))(states, batches, keys)
  for i in range(2):
    single, single_metrics = jax.jit(task.train_step)(
        jax.tree.map(lambda x: x[i], states), jax.tree.map(lambda x: x[i], batches), keys[i])
    np.testing.assert_allclose(metrics["d_loss"][i], single_metrics["d_loss"], rtol=1e-5)
    np.testing.assert_allclose(metrics["g_loss"][i], single_metrics["g_loss"], rtol=1e-5)
    # Adam's first step moves each weight by about ±lr·g/(|g| + ε): where |g| is at float
    # noise level, batched and single programs may differ by up to 2·lr in a few weights.
    for part in ("generator", "discriminator"):
      for a, b in zip(jax.tree.leaves(getattr(single, part).params),
                      jax.tree.leaves(getattr(new, part).params)):
        diff = np.abs(np.asarray(a) - np.asarray(b[i]))
        assert diff.mean() < 1e-3 * float(lrs[i]) and diff.max() <= 2 * float(lrs[i]) + 1e-6


def test_the_generators_moving_average_is_what_samples_use():
  config = _config()
  config.optim.g_ema_decay = 0.9
  task = tasks.get_task(config, None)
  state = task.init_state(jax.random.key(0))
  step = jax.jit(task.train_step)
  one, _ = step(state, _batch(), jax.random.key(1))
  two, _ = step(one, _batch(seed=4), jax.random.key(2))
  # ema_t = 0.9 ema_{t-1} + 0.1 θ_t, from ema_0 = θ_0 (Yazıcı et al. 2019).
  for e0, t1, t2, e2 in zip(*(jax.tree.leaves(t) for t in (
      state.generator.params, one.generator.params, two.generator.params, two.g_ema))):
    np.testing.assert_allclose(e2, 0.9 * (0.9 * e0 + 0.1 * t1) + 0.1 * t2, rtol=1e-5,
                               atol=1e-7)
  z, labels, styles, _ = _inputs(4, 10, latent_dim=8)
  own = task.generator.apply({"params": two.generator.params}, z, labels, styles)
  averaged = task.generator.apply({"params": two.g_ema}, z, labels, styles)
  np.testing.assert_allclose(task.sample(two, z, labels, styles), (averaged + 1) / 2, rtol=1e-6)
  assert not np.allclose(averaged, own)
  # Decay 0: the average is G's own weights, bit for bit.
  config.optim.g_ema_decay = 0.0
  plain = tasks.get_task(config, None)
  new, _ = jax.jit(plain.train_step)(plain.init_state(jax.random.key(0)), _batch(),
                                     jax.random.key(1))
  for a, b in zip(jax.tree.leaves(new.g_ema), jax.tree.leaves(new.generator.params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("architecture", cgan.ARCHITECTURES)
def test_spectral_norm_bounds_every_discriminator_layer(architecture):
  config = _config()
  config.model.architecture = architecture
  config.model.channels = (8, 16)
  config.model.spectral_norm = True
  task = tasks.get_task(config, None)
  state = task.init_state(jax.random.key(0))
  for path, kernel in jax.tree_util.tree_leaves_with_path(state.discriminator.params):
    if "kernel" in jax.tree_util.keystr(path):
      w = np.asarray(conv.spectral_normalize(kernel))
      sigma = np.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)[0]
      assert sigma == pytest.approx(1.0, abs=0.05), jax.tree_util.keystr(path)
  # D's layers are the normalised kind, and a step trains both networks.
  names = " ".join(jax.tree_util.keystr(p) for p, _ in
                   jax.tree_util.tree_leaves_with_path(state.discriminator.params))
  assert "SpectralDense" in names and "'Dense_" not in names
  new, metrics = jax.jit(task.train_step)(state, _batch(), jax.random.key(1))
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values())
  for part in ("generator", "discriminator"):
    assert not all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(getattr(new, part).params), jax.tree.leaves(getattr(state, part).params)))


@pytest.mark.parametrize("architecture", cgan.ARCHITECTURES)
def test_a_projection_discriminator_sees_the_condition_only_through_its_embeddings(
    architecture):
  z, labels, styles, x = _inputs(5, 10)
  d = cgan.Discriminator(10, architecture, hidden=32, channels=(8, 16),
                         conditioning="projection")
  variables = d.init(jax.random.key(2), x, labels, styles)
  scores = d.apply(variables, x, labels, styles)
  for other_labels, other_styles in (((labels + 1) % 10, styles), (labels, 1 - styles)):
    assert not np.allclose(d.apply(variables, x, other_labels, other_styles), scores)
  # Without the embeddings' term, the score is ψ(φ(x)): the same for every condition.
  params = dict(variables["params"])
  for name in ("class_embedding", "style_embedding"):
    params[name] = jax.tree.map(jnp.zeros_like, params[name])
  blind = d.apply({"params": params}, x, labels, styles)
  np.testing.assert_array_equal(d.apply({"params": params}, x, (labels + 3) % 10, 1 - styles),
                                blind)
  with pytest.raises(errors.ConfigError, match="d_conditioning='film'"):
    cgan.Discriminator(10, architecture, conditioning="film").init(
        jax.random.key(0), x, labels, styles)


def test_spectral_normalize_matches_the_svd_and_passes_gradients():
  rng = np.random.default_rng(0)
  u, _ = np.linalg.qr(rng.normal(size=(40, 40)))
  v, _ = np.linalg.qr(rng.normal(size=(12, 12)))
  w = (u[:, :12] * np.r_[3.0, np.linspace(2.0, 0.5, 11)]) @ v.T   # σ = 3, 2, ...
  normalised = conv.spectral_normalize(jnp.asarray(w, jnp.float32))
  assert np.linalg.svd(np.asarray(normalised), compute_uv=False)[0] == pytest.approx(1, abs=0.01)
  grad = jax.grad(lambda k: conv.spectral_normalize(k).sum())(jnp.asarray(w, jnp.float32))
  assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


@pytest.fixture
def tiny_cgan(kmnist_dir, tmp_path):
  """configs/cgan.py on 256 real KMNIST images: 8 steps of 32 per epoch, 2 epochs."""
  config = on_real_kmnist(cgan_config.get_config(), kmnist_dir, tmp_path)
  config.model.hidden = 64
  config.figures.samples_per_style = 2
  config.figures.progress_every_epochs = 1
  return config


def test_cgan_run_is_deterministic_and_resumes_exactly(tiny_cgan, tmp_path, monkeypatch):
  full, again, resumed = (str(tmp_path / n) for n in ("full", "again", "resumed"))
  summary = experiment.train_and_evaluate(tiny_cgan, full)
  assert summary["step"] == 16 and summary["epoch"] == 2
  for key in ("train/d_loss", "train/g_loss", "eval/d_loss", "eval/g_loss"):
    assert np.isfinite(summary[key])
  figures = set(os.listdir(os.path.join(full, "figures")))
  assert {"class_style_samples.png", "loss_curves.png", "style_examples.png"} <= figures
  assert sorted(os.listdir(os.path.join(full, "figures", "progress"))) == [
      "epoch_0001.png", "epoch_0002.png"]
  experiment.train_and_evaluate(tiny_cgan, again)

  die_after_save(monkeypatch, 12)  # mid-epoch 2
  with pytest.raises(Killed):
    experiment.train_and_evaluate(tiny_cgan, resumed)
  monkeypatch.undo()
  experiment.train_and_evaluate(tiny_cgan, resumed)

  metrics = open(os.path.join(full, "metrics.jsonl")).read()
  for other in (again, resumed):
    assert open(os.path.join(other, "metrics.jsonl")).read() == metrics
  # Both networks and both Adam states are checkpointed and restored bit for bit.
  _, state_full = latest_checkpoint_state(full)
  for other in (again, resumed):
    step, state = latest_checkpoint_state(other)
    assert step == 16
    for part in ("generator", "discriminator"):
      for name in ("params", "opt_state"):
        for a, b in zip(jax.tree.leaves(state_full[part][name]), jax.tree.leaves(state[part][name])):
          np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("override, message", [
    ("objective.loss", "nope"), ("objective.label_smoothing", 1.0), ("objective.d_steps", 0),
    ("model.output", "relu"), ("model.architecture", "resnet"), ("optim.b1", 1.5),
])
def test_bad_cgan_values_are_refused(override, message):
  config = cgan_config.get_config()
  section, name = override.split(".")
  config[section][name] = message
  with pytest.raises(validation.ConfigError, match=f"config.{override}={message!r} is not allowed"):
    validation.validate_config(config)
