"""kjax.models.conv computes XLA's convolutions, their gradients and Flax's parameters."""

from absl import logging as absl_logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kjax import autotune
from configs import cvae as cvae_config
from kjax import errors
from kjax import tasks
from kjax import validation
from kjax.models import classifier
from kjax.models import conv
from kjax.models import vae


def _grads(fn, x, kernel):
  """Gradients of a non-linear scalar of ``fn(x, kernel)`` in x and the kernel."""
  return jax.grad(lambda x, k: jnp.sum(jnp.sin(fn(x, k))), argnums=(0, 1))(x, kernel)


@pytest.mark.parametrize("size,c_in,c_out,stride", [
    (28, 1, 32, 2),   # the encoder's first conv: custom VJP
    (7, 5, 6, 2),     # im2col; odd size, stride 2: 'SAME' pads one more at the end
    (9, 3, 2, 1),     # small C_out (the logits layer's form): matmul then shifted sum
])
def test_conv2d_matmul_equals_xla_with_gradients(size, c_in, c_out, stride):
  x = jax.random.normal(jax.random.key(0), (3, size, size, c_in))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, c_in, c_out)) * 0.3
  ref = conv.conv2d(x, kernel, stride, "xla")
  got = conv.conv2d(x, kernel, stride, "matmul")
  assert got.shape == ref.shape == (3, -(-size // stride), -(-size // stride), c_out)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
  for a, b in zip(_grads(lambda x, k: conv.conv2d(x, k, stride, "matmul"), x, kernel),
                  _grads(lambda x, k: conv.conv2d(x, k, stride, "xla"), x, kernel)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size,c_in,c_out", [(7, 16, 8), (4, 3, 2)])
def test_conv_transpose_matmul_gradient_equals_xla(size, c_in, c_out):
  x = jax.random.normal(jax.random.key(2), (2, size, size, c_in))
  kernel = jax.random.normal(jax.random.key(3), (3, 3, c_in, c_out)) * 0.3
  got = conv.conv_transpose2x(x, kernel, "matmul")
  ref = jax.lax.conv_transpose(x, kernel, (2, 2), "SAME",
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert got.shape == (2, 2 * size, 2 * size, c_out)
  np.testing.assert_array_equal(got, ref)  # the same XLA op forward
  for a, b in zip(_grads(lambda x, k: conv.conv_transpose2x(x, k, "matmul"), x, kernel),
                  _grads(lambda x, k: conv.conv_transpose2x(x, k, "xla"), x, kernel)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_module_is_flax_conv():
  """Same parameter names, shapes and initial values as flax.linen.Conv; same outputs."""
  x = jax.random.normal(jax.random.key(4), (2, 14, 14, 3))
  ref = nn.Conv(8, (3, 3), strides=(2, 2), padding="SAME")
  for impl in ("xla", "matmul"):
    mine = conv.Conv(8, (3, 3), strides=(2, 2), impl=impl)
    p_ref, p_mine = ref.init(jax.random.key(5), x), mine.init(jax.random.key(5), x)
    assert jax.tree.structure(p_ref) == jax.tree.structure(p_mine)
    for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_mine)):
      np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(mine.apply(p_ref, x), ref.apply(p_ref, x), rtol=1e-5, atol=1e-5)


def test_lax_map_chunks_of_a_large_batch_are_exact():
  """A batch beyond the unrolled chunks goes through lax.map (padded, then cut)."""
  b = conv.CHUNK * conv.MAX_CHUNKS + 37
  x = jax.random.normal(jax.random.key(8), (b, 3))
  fn = lambda v: (jnp.tanh(v) * 2.0, v.sum(-1))  # noqa: E731
  got = conv.over_batch_chunks(fn, x, "matmul")
  ref = fn(x)
  assert got[0].shape == (b, 3) and got[1].shape == (b,)
  for a, r in zip(got, ref):
    np.testing.assert_allclose(a, r, rtol=1e-6)


@pytest.mark.parametrize("batch", [40])  # unrolled chunks of a training batch (3 uneven)
def test_batch_chunks_give_the_same_values_and_gradients(batch):
  x = jax.random.uniform(jax.random.key(6), (batch, 28, 28, 1))
  models = {impl: vae.BetaVAE(latent_dim=2, conv_impl=impl) for impl in ("xla", "matmul")}
  params = models["xla"].init({"params": jax.random.key(0), "latent": jax.random.key(1)}, x[:1])
  # Compiled whole (run eagerly, each chunk's every op is a program of its own: 500 here).
  outs = {impl: jax.jit(lambda p, m=m: m.apply(p, x, rngs={"latent": jax.random.key(2)}))(params)
          for impl, m in models.items()}
  for a, b in zip(outs["matmul"], outs["xla"]):
    assert a.shape == b.shape and a.shape[0] == batch
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-5)
  if batch <= conv.CHUNK * conv.MAX_CHUNKS:  # training batches: gradients too
    def loss(p, impl):
      logits, z_mean, _ = models[impl].apply(p, x, rngs={"latent": jax.random.key(2)})
      return jnp.mean(jax.nn.sigmoid(logits)) + jnp.mean(z_mean ** 2)
    g = {impl: jax.jit(jax.grad(loss), static_argnums=1)(params, impl) for impl in models}
    for a, b in zip(jax.tree.leaves(g["matmul"]), jax.tree.leaves(g["xla"])):
      np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)


def test_classifier_features_are_the_same_in_chunks():
  x = jax.random.uniform(jax.random.key(7), (70, 28, 28, 1))
  xla, mm = classifier.CNNClassifier(10, conv_impl="xla"), classifier.CNNClassifier(10, conv_impl="matmul")
  params = xla.init(jax.random.key(0), x[:1])
  np.testing.assert_allclose(mm.apply(params, x), xla.apply(params, x), rtol=1e-5, atol=1e-5)


def test_auto_resolves_by_platform_and_bad_values_name_themselves():
  assert conv.resolve_impl("auto") == ("matmul" if jax.default_backend() == "cpu" else "xla")
  assert conv.resolve_impl("xla") == "xla"
  with pytest.raises(errors.ConfigError, match="config.model.conv_impl='cudnn' is not one of"):
    conv.resolve_impl("cudnn")


@pytest.mark.parametrize("value,steps_per_epoch,backend,conv_model,expected", [
    ("auto", 62, "cpu", True, 1), ("auto", 80, "cpu", False, 80), ("auto", 62, "gpu", True, 62),
    ("auto", 600, "gpu", True, 100), ("auto", 468, "tpu", False, 78),
    ("auto", 127, "gpu", True, 100), ("auto", 3, "gpu", True, 3),
    (5, 62, "gpu", True, 5), ("10", 62, "cpu", True, 10)])
def test_steps_per_call_auto(value, steps_per_epoch, backend, conv_model, expected):
  assert autotune.steps_per_call(value, steps_per_epoch, backend, conv_model) == expected


def test_which_models_are_convolutional():  # each Task declares it (kjax.tasks)
  assert tasks.has_convolutions({"name": "beta_vae"})
  assert tasks.has_convolutions({"name": "cgan", "architecture": "dcgan"})
  assert not tasks.has_convolutions({"name": "cvae", "architecture": "mlp_bn"})


@pytest.mark.parametrize("value", [0, -1, "many", 2.5, True])
def test_steps_per_call_refuses_bad_values(value):
  with pytest.raises(errors.ConfigError, match="config.train.steps_per_call=.* expected 'auto'"):
    autotune.steps_per_call(value, 10, "cpu")


def test_conv_impl_on_an_mlp_is_warned_about(caplog):
  config = cvae_config.get_config()
  config.model.conv_impl = "xla"
  absl_logging.get_absl_logger().propagate = True
  with caplog.at_level("WARNING"):
    validation.validate_config(config)
  assert "config.model.conv_impl='xla' is ignored" in caplog.text
