"""The β-VAE family (``config.objective.name``): closed-form and oracle checks of the
β-TCVAE and annealed-capacity terms and the KL warm-up, their config checks, and a tiny
jitted and vmapped train step per objective."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import beta_vae as beta_vae_config
from configs import cvae as cvae_config
from kjax import objectives, tasks, validation
from kjax.tasks import base

# --- objective terms ------------------------------------------------------------------


def _hand_terms_inputs(b=3):
  """logits 0 (rec = 784 log 2 for any x) and N(1, 1) posteriors over 10 dims (kl = 5)."""
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(b, 28, 28, 1)), jnp.float32)
  return jnp.zeros((b, 28, 28, 1)), x, jnp.ones((b, 10)), jnp.zeros((b, 10))


def test_linear_warmup_weight():
  assert float(objectives.linear_warmup(0, 100)) == 0.0
  assert float(objectives.linear_warmup(50, 100)) == 0.5
  assert float(objectives.linear_warmup(100, 100)) == 1.0
  assert float(objectives.linear_warmup(1000, 100)) == 1.0
  assert float(objectives.linear_warmup(0, 0)) == 1.0  # 0 = off
  assert float(jax.jit(objectives.linear_warmup)(jnp.int32(25), jnp.float32(100.0))) == 0.25


def test_annealed_capacity_schedule():
  assert float(objectives.annealed_capacity(0, 25.0, 10000)) == 0.0
  assert float(objectives.annealed_capacity(5000, 25.0, 10000)) == 12.5
  assert float(objectives.annealed_capacity(10000, 25.0, 10000)) == 25.0
  assert float(objectives.annealed_capacity(30000, 25.0, 10000)) == 25.0


def test_annealed_vae_terms_on_hand_values():
  logits, x, z_mean, z_logvar = _hand_terms_inputs()
  rec = 784 * math.log(2.0)
  for capacity, gap in ((2.0, 3.0), (7.0, 2.0), (5.0, 0.0)):
    t = objectives.annealed_vae_terms(logits, x, z_mean, z_logvar, 1000.0, capacity)
    assert set(t) == {"loss", "rec", "kl", "nelbo", "capacity"}
    assert all(v.shape == (3,) and v.dtype == jnp.float32 for v in t.values())
    np.testing.assert_allclose(t["kl"], 5.0, rtol=1e-6)
    np.testing.assert_allclose(t["rec"], rec, rtol=1e-6)
    np.testing.assert_allclose(t["loss"], rec + 1000.0 * gap, rtol=1e-6)
    np.testing.assert_allclose(t["nelbo"], rec + 5.0, rtol=1e-6)
    np.testing.assert_array_equal(t["capacity"], capacity)


def _posteriors(key, b, d, scale=1.0):
  k1, k2, k3 = jax.random.split(key, 3)
  z_mean = scale * jax.random.normal(k1, (b, d))
  z_logvar = 0.5 * jax.random.normal(k2, (b, d))
  z = z_mean + jnp.exp(0.5 * z_logvar) * jax.random.normal(k3, (b, d))
  return z, z_mean, z_logvar


def test_beta_tc_vae_with_beta_one_is_the_nelbo():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(size=(6, 28, 28, 1)), jnp.float32)
  x = jnp.asarray(rng.uniform(size=(6, 28, 28, 1)), jnp.float32)
  z, z_mean, z_logvar = _posteriors(jax.random.key(0), 6, 4)
  t = objectives.beta_tc_vae_terms(logits, x, z_mean, z_logvar, z, 1.0, 1000)
  assert set(t) == {"loss", "rec", "kl", "nelbo", "tc"}
  np.testing.assert_array_equal(t["loss"], t["nelbo"])
  t4 = objectives.beta_tc_vae_terms(logits, x, z_mean, z_logvar, z, 4.0, 1000)
  np.testing.assert_allclose(t4["loss"], t4["rec"] + t4["kl"] + 3.0 * t4["tc"], rtol=1e-6)
  # The warm-up weight scales the whole regulariser; 0 leaves the reconstruction.
  t0 = objectives.beta_tc_vae_terms(logits, x, z_mean, z_logvar, z, 4.0, 1000, kl_weight=0.0)
  np.testing.assert_array_equal(t0["loss"], t0["rec"])


def test_mws_tc_of_identical_factorised_posteriors_is_its_constant_offset():
  """All q(z|x_j) equal and factorised (true TC = 0): MWS gives exactly (D − 1) log N for
  every sample, the estimator's parameter-free offset; padded rows do not enter."""
  d, n = 3, 60000
  z = jax.random.normal(jax.random.key(0), (16, d)) * 3.0
  z_mean = jnp.broadcast_to(jnp.array([0.5, -1.0, 2.0]), (16, d))
  z_logvar = jnp.broadcast_to(jnp.array([0.0, -1.0, 0.7]), (16, d))
  tc = objectives.mws_total_correlation(z, z_mean, z_logvar, n)
  np.testing.assert_allclose(tc, (d - 1) * math.log(n), rtol=1e-5)
  # Four padded rows with other posteriors are ignored (M = 12).
  mask = jnp.arange(16) < 12
  z_mean_padded = jnp.where(mask[:, None], z_mean, 9.0)
  tc_masked = objectives.mws_total_correlation(z, z_mean_padded, z_logvar, n, mask)
  np.testing.assert_allclose(tc_masked[:12], (d - 1) * math.log(n), rtol=1e-5)


def _numpy_mws(z, z_mean, z_logvar, n):
  """Brute force, float64 loops: the formula of Chen et al. 2018 §4.1."""
  z, z_mean, z_logvar = (np.asarray(a, np.float64) for a in (z, z_mean, z_logvar))
  m, d = z.shape

  def logsumexp(a):
    top = max(a)
    return top + math.log(sum(math.exp(v - top) for v in a))

  out = []
  for i in range(m):
    log_q = [[-0.5 * (math.log(2 * math.pi) + z_logvar[j, k]
                      + (z[i, k] - z_mean[j, k]) ** 2 / math.exp(z_logvar[j, k]))
              for k in range(d)] for j in range(m)]
    log_qz = logsumexp([sum(row) for row in log_q]) - math.log(n * m)
    log_prod = sum(logsumexp([log_q[j][k] for j in range(m)]) - math.log(n * m)
                   for k in range(d))
    out.append(log_qz - log_prod)
  return np.array(out)


def test_mws_tc_matches_a_numpy_oracle():
  z, z_mean, z_logvar = _posteriors(jax.random.key(3), 48, 3)
  got = objectives.mws_total_correlation(z, z_mean, z_logvar, 5000)
  np.testing.assert_allclose(got, _numpy_mws(z, z_mean, z_logvar, 5000), rtol=1e-4, atol=1e-4)


def test_mws_tc_sees_correlated_codes():
  """Means on the diagonal z1 = z2 (aggregate correlation ρ = 1/1.1, true TC =
  −½ log(1 − ρ²) ≈ 0.88 nats) vs independent means (TC = 0): 1024 samples, offset
  (D − 1) log N removed."""
  m, d = 1024, 2
  keys = jax.random.split(jax.random.key(4), 4)
  z_logvar = jnp.full((m, d), math.log(0.1))
  offset = (d - 1) * math.log(m)

  def tc(z_mean, key):
    z = z_mean + jnp.exp(0.5 * z_logvar) * jax.random.normal(key, (m, d))
    return float(objectives.mws_total_correlation(z, z_mean, z_logvar, m).mean()) - offset

  u = jax.random.normal(keys[0], (m, 1))
  correlated = tc(jnp.concatenate([u, u], 1), keys[1])
  independent = tc(jax.random.normal(keys[2], (m, d)), keys[3])
  rho = 1 / 1.1
  assert abs(correlated - (-0.5 * math.log(1 - rho**2))) < 0.15
  assert abs(independent) < 0.1


# --- config checks --------------------------------------------------------------------


def test_configs_carry_the_family_fields_with_their_types():
  for module in (beta_vae_config, cvae_config):
    o = module.get_config().objective
    assert o.name == "beta_vae" and o.name in objectives.VAE_OBJECTIVES
    assert isinstance(o.gamma, float) and isinstance(o.c_max, float)
    assert isinstance(o.c_steps, int) and isinstance(o.kl_warmup_steps, int)
    validation.validate_config(module.get_config())


@pytest.mark.parametrize("field,value,message", [
    ("name", "factor_vae", "config.objective.name='factor_vae' is not allowed: expected one "
                           "of ('beta_vae', 'beta_tc_vae', 'annealed_vae')"),
    ("gamma", -1.0, "config.objective.gamma=-1.0 is not allowed"),
    ("c_max", float("nan"), "config.objective.c_max=nan is not allowed"),
    ("c_steps", 0, "config.objective.c_steps=0 is not allowed: expected an integer >= 1"),
    ("c_steps", -5, "config.objective.c_steps=-5 is not allowed"),
    ("kl_warmup_steps", -1, "config.objective.kl_warmup_steps=-1 is not allowed"),
])
def test_bad_family_fields_are_refused_in_one_line(field, value, message):
  config = beta_vae_config.get_config()
  config.objective[field] = value
  with pytest.raises(validation.ConfigError, match=None) as info:
    validation.validate_config(config)
  assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_annealed_vae_refuses_a_kl_warmup():
  config = cvae_config.get_config()
  config.objective.name = "annealed_vae"
  config.objective.kl_warmup_steps = 100
  with pytest.raises(validation.ConfigError, match="kl_warmup_steps=100 is not allowed"):
    validation.validate_config(config)


def test_configs_without_the_family_fields_still_validate_and_build():
  """A config.json written before the family: the task defaults to the β-VAE."""
  config = beta_vae_config.get_config()
  for name in ("name", "gamma", "c_max", "c_steps", "kl_warmup_steps"):
    del config.objective[name]
  validation.validate_config(config)
  task = tasks.get_task(config, None)
  assert task.objective == "beta_vae" and task.train_metrics == ("loss", "rec", "kl", "nelbo")


# --- the task: hparams, jitted and vmapped steps --------------------------------------


@functools.lru_cache(maxsize=None)
def _task(name="beta_vae", kl_warmup_steps=0):
  """A tiny β-VAE task (channels (4,), c_steps 4, N = 1000), with its jitted functions
  as ``task.jit`` (shared between tests: each compiles once)."""
  config = beta_vae_config.get_config()
  config.model.channels = (4,)
  config.model.hidden = 8
  config.objective.name = name
  config.objective.c_steps = 4
  config.objective.kl_warmup_steps = kl_warmup_steps
  validation.validate_config(config)
  task = tasks.get_task(config, 1000)
  task.jit = {"train": jax.jit(task.train_step), "eval": jax.jit(task.eval_sums)}
  return task


@functools.lru_cache(maxsize=None)
def _initial_state():
  return _task().init_state(jax.random.key(0))


def _state(task, **hparams):
  """The tiny model's initial state (the same network for every objective) with
  ``task.objective_hparams(**hparams)``: initialising the conv net costs more than a step."""
  return _initial_state().replace(hparams=task.objective_hparams(**hparams))


def _batch(key, n=8):
  return {"images": jax.random.randint(key, (n, 28, 28, 1), 0, 256).astype(jnp.uint8),
          "labels": jnp.zeros((n,), jnp.int32), "styles": jnp.zeros((n,), jnp.int32)}


def test_hparams_keys_per_objective():
  assert set(_task().objective_hparams()) == {"beta"}
  assert set(_task("beta_vae", 100).objective_hparams()) == {"beta", "kl_warmup_steps"}
  assert set(_task().objective_hparams(kl_warmup_steps=0)) == {"beta", "kl_warmup_steps"}
  assert set(_task("beta_tc_vae").objective_hparams()) == {"beta"}
  assert set(_task("beta_tc_vae", 100).objective_hparams()) == {"beta", "kl_warmup_steps"}
  assert set(_task("annealed_vae").objective_hparams()) == {"beta", "gamma", "c_max", "c_steps"}
  state = _task("annealed_vae").init_state(jax.random.key(0), gamma=10.0, beta=2.0,
                                           learning_rate=0.5)
  assert set(state.hparams) == {"beta", "gamma", "c_max", "c_steps"}
  assert all(v.dtype == jnp.float32 and v.shape == () for v in state.hparams.values())
  assert float(state.hparams["gamma"]) == 10.0 and float(state.hparams["c_steps"]) == 4.0
  assert float(state.hparams["beta"]) == 2.0 and float(state.hparams["c_max"]) == 25.0
  assert float(state.opt_state.hyperparams["learning_rate"]) == 0.5
  with pytest.raises(ValueError, match="gamma not used by config.objective.name='beta_vae'"):
    _task().init_state(jax.random.key(0), gamma=1.0)
  with pytest.raises(ValueError, match="kl_warmup_steps"):
    _task("annealed_vae").init_state(jax.random.key(0), kl_warmup_steps=10)


def test_default_objective_step_is_bit_identical_to_the_plain_beta_vae():
  """``beta_vae`` without warm-up: the step of before the family, bit for bit."""
  task = _task()
  state = _initial_state()
  batch, key = _batch(jax.random.key(1)), jax.random.key(2)

  def reference_step(state, batch, key):
    x = base.to_unit_interval(batch["images"])

    def loss_fn(params):
      (logits, z_mean, z_logvar), _ = task._forward(params, state.batch_stats, x, batch, key,
                                                    True)
      terms = objectives.beta_vae_terms(logits, x, z_mean, z_logvar, state.hparams["beta"],
                                        task.likelihood, task.gaussian_variance)
      means = {k: v.mean() for k, v in terms.items()}
      return means["loss"], means

    grads, means = jax.grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), means

  new, metrics = task.jit["train"](state, batch, key)
  ref, ref_metrics = jax.jit(reference_step)(state, batch, key)
  assert set(metrics) == set(ref_metrics) == {"loss", "rec", "kl", "nelbo"}
  for k in metrics:
    np.testing.assert_array_equal(metrics[k], ref_metrics[k])
  for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(ref.params)):
    np.testing.assert_array_equal(a, b)


def test_kl_warmup_in_training_and_full_weight_in_evaluation():
  task = _task("beta_vae", 100)
  state = _state(task, beta=4.0)
  batch, key = _batch(jax.random.key(1)), jax.random.key(2)
  step = task.jit["train"]
  _, m0 = step(state, batch, key)  # step 0: weight 0
  np.testing.assert_allclose(m0["loss"], m0["rec"], rtol=1e-6)
  _, m50 = step(state.replace(step=jnp.int32(50)), batch, key)
  np.testing.assert_allclose(m50["loss"], m50["rec"] + 2.0 * m50["kl"], rtol=1e-5)
  mask = jnp.arange(8) < 6
  sums = task.jit["eval"](state, batch, mask, key)  # step 0, full weight
  np.testing.assert_allclose(sums["loss"], sums["rec"] + 4.0 * sums["kl"], rtol=1e-5)
  assert float(sums["count"]) == 6.0


@pytest.mark.parametrize("name,extra", [("beta_vae", ()), ("beta_tc_vae", ("tc",)),
                                        ("annealed_vae", ("capacity",))])
def test_each_objective_trains_and_evaluates(name, extra):
  task = _task(name)
  assert task.train_metrics == ("loss", "rec", "kl", "nelbo") + extra
  assert task.eval_metrics == task.train_metrics
  state = _state(task)
  step = task.jit["train"]
  batch = _batch(jax.random.key(1))
  for i in range(2):
    state, metrics = step(state, batch, jax.random.key(10 + i))
  assert set(metrics) == set(task.train_metrics)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  if name == "annealed_vae":  # C at step 1 of 4: c_max / 4
    np.testing.assert_allclose(metrics["capacity"], 25.0 / 4, rtol=1e-6)
  mask = jnp.arange(8) < 5
  sums = task.jit["eval"](state, batch, mask, jax.random.key(3))
  assert set(sums) == set(task.eval_metrics) | {"count"}
  assert all(np.isfinite(float(v)) for v in sums.values())
  assert (name == "beta_vae") == ("β-TCVAE" not in task.describe()
                                  and "annealed" not in task.describe())


def test_beta_tc_vae_needs_the_train_split_size():
  task = tasks.get_task(_task("beta_tc_vae").config, None)
  assert task.num_train_examples is None
  state = _state(task)
  with pytest.raises(ValueError, match="num_train_examples"):
    jax.jit(task.train_step)(state, _batch(jax.random.key(1)), jax.random.key(2))


@pytest.mark.parametrize("name,warmup,hparam,values", [
    ("annealed_vae", 0, "gamma", (10.0, 1000.0)),
    ("beta_tc_vae", 0, "beta", (1.0, 6.0)),
    ("beta_vae", 100, "kl_warmup_steps", (0.0, 10.0)),
])
def test_train_step_vmaps_over_runs_with_different_hparams(name, warmup, hparam, values):
  """Two runs stacked on a leading axis, differing only in one per-run hyper-parameter,
  in one vmapped step at step 3: each run's metrics equal its own unbatched step."""
  task = _task(name, warmup)
  runs = [_state(task, **{hparam: v}).replace(step=jnp.int32(3)) for v in values]
  states = jax.tree.map(lambda *a: jnp.stack(a), *runs)
  assert states.hparams[hparam].shape == (2,)
  batch = _batch(jax.random.key(1))
  step_keys = jax.random.split(jax.random.key(2), 2)
  _, metrics = jax.jit(jax.vmap(task.train_step, in_axes=(0, None, 0)))(states, batch,
                                                                        step_keys)
  assert metrics["loss"].shape == (2,)
  for i in range(2):
    _, single = task.jit["train"](runs[i], batch, step_keys[i])
    for k in task.train_metrics:
      np.testing.assert_allclose(metrics[k][i], single[k], rtol=1e-5)
  assert not np.isclose(metrics["loss"][0], metrics["loss"][1])


def test_cvae_takes_the_family_too():
  config = cvae_config.get_config()
  config.model.hidden = 16
  config.objective.name = "beta_tc_vae"
  config.objective.beta = 6.0
  validation.validate_config(config)
  task = tasks.get_task(config, 500)
  state = task.init_state(jax.random.key(0))
  batch = _batch(jax.random.key(1))
  _, metrics = jax.jit(task.train_step)(state, batch, jax.random.key(2))
  assert np.isfinite(float(metrics["tc"])) and "β-TCVAE β=6" in task.describe()
