"""What each model family declares (``kjax.tasks.Task``) holds: every ``stackable`` setting
lives in an array of the train state and never in the step's code, so a sweep that stacks
runs differing in it trains each with its own value (a wrong entry would train every
stacked run with run 0's value). Traced only (``jax.eval_shape``, ``jax.make_jaxpr``):
nothing is compiled."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kjax import configs
from kjax import tasks

BATCH = 8


def _config(name, objective=None):
  config = configs.get_config(name)
  if objective:
    config.objective.name = objective
  return config


def _program(config):
  """The train state's leaf shapes and the train step's jaxpr (text and constants)."""
  task = tasks.get_task(config, 1000)
  key = jax.random.key(0)
  state = jax.eval_shape(task.init_state, key)
  batch = {"images": jax.ShapeDtypeStruct((BATCH, 28, 28, 1), jnp.uint8),
           "labels": jax.ShapeDtypeStruct((BATCH,), jnp.int32),
           "styles": jax.ShapeDtypeStruct((BATCH,), jnp.int32)}
  closed = jax.make_jaxpr(task.train_step)(state, batch, key)
  leaves = [(x.shape, x.dtype) for x in jax.tree.leaves(state)]
  return leaves, str(closed.jaxpr), [np.asarray(c) for c in closed.consts]


def _changed(value):
  if value is None:
    return 3.7e-4
  if isinstance(value, int):
    return value + 3
  return value * 0.5 + 0.013


def _with(config, key, value):
  config = config.copy_and_resolve_references()
  section, field = key.split(".")
  config[section][field] = value
  return config


def _same_program(a, b):
  (leaves_a, text_a, consts_a), (leaves_b, text_b, consts_b) = a, b
  return (leaves_a == leaves_b and text_a == text_b and len(consts_a) == len(consts_b)
          and all(x.shape == y.shape and np.array_equal(x, y)
                  for x, y in zip(consts_a, consts_b)))


@pytest.mark.parametrize("name,objective", [("beta_vae", None), ("beta_vae", "annealed_vae"),
                                            ("cvae", None), ("cgan", None),
                                            ("classifier", None)])
def test_every_stackable_setting_lives_in_the_state_not_the_step(name, objective):
  config = _config(name, objective)
  reference = _program(config)
  declared = tasks.stackable_keys(config.model)
  assert declared[0] == "seed" and set(declared[1:]) == set(tasks.TASKS[name].stackable)
  for key in declared[1:]:
    section, field = key.split(".")
    changed = _with(config, key, _changed(config[section][field]))
    assert _same_program(_program(changed), reference), (
        f"{name}: {key} changes the train step's program; it is not stackable")


def test_a_setting_that_changes_the_program_is_caught():
  """The check above can fail: the latent size changes the state's shapes."""
  config = _config("cvae")
  assert not _same_program(_program(_with(config, "model.latent_dim", 7)), _program(config))
  assert "model.latent_dim" not in tasks.stackable_keys(config.model)


def test_families_declare_encoder_and_convolutions():
  assert tasks.TASKS["beta_vae"].has_encoder and tasks.TASKS["cvae"].has_encoder
  assert not tasks.TASKS["cgan"].has_encoder and tasks.TASKS["classifier"].is_classifier
  assert tasks.TASKS["cvae"].vmaps_well_on_cpu({"architecture": "mlp"})
  assert not tasks.TASKS["cvae"].vmaps_well_on_cpu({"architecture": "conv"})
