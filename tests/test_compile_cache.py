"""The persistent compilation cache (``kjax.compile_cache``): CPU programs compiled by one
process are loaded by the next on this machine, its folder is keyed by what makes a program
unusable elsewhere, the switch turns it off, and a run with a warm cache equals a run
without one bit for bit."""

import json
import os
import subprocess
import sys

import jax
import numpy as np

from kjax import compile_cache
from tests.conftest import REPO, latest_checkpoint_state

# One tiny program, then the cache's counters and folder, as JSON.
PROBE = ("import json, jax, jax.numpy as jnp; from kjax import compile_cache; "
         "d = compile_cache.enable(); "
         "jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((32, 32))).block_until_ready(); "
         "print(json.dumps(compile_cache.stats()))")


def _probe(cache_root, **env):
  result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "KJAX_CACHE_DIR": str(cache_root),
                                            **env})
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_programs_the_first_compiled(tmp_path):
  first = _probe(tmp_path)
  second = _probe(tmp_path)
  assert first["misses"] > 0 and first["hits"] == 0, first
  # Every program of the first process is reused: none is refused on reload on this CPU
  # (jax-ml/jax#38445 reports every entry refused on some x86 CPUs).
  assert second["hits"] == first["misses"] and second["misses"] == 0, second
  assert first["dir"] == second["dir"]
  assert first["dir"].startswith(str(tmp_path / "xla")) and os.listdir(first["dir"])


def test_the_switch_turns_the_cache_off(tmp_path):
  stats = _probe(tmp_path, KJAX_COMPILATION_CACHE="0")
  assert stats == {"dir": None, "hits": 0, "misses": 0}
  assert not (tmp_path / "xla").exists()


def test_a_switch_value_that_is_no_switch_is_named_and_the_cache_stays_on(tmp_path):
  result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "KJAX_CACHE_DIR": str(tmp_path),
                                            "KJAX_COMPILATION_CACHE": "maybe"})
  assert result.returncode == 0, result.stderr[-2000:]
  assert "KJAX_COMPILATION_CACHE='maybe' is not a switch" in result.stderr
  assert json.loads(result.stdout.strip().splitlines()[-1])["dir"] is not None


def test_the_folder_is_keyed_by_versions_xla_flags_and_cpu(monkeypatch, tmp_path):
  monkeypatch.setenv("KJAX_CACHE_DIR", str(tmp_path))
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  plain = compile_cache.default_dir()
  assert os.path.dirname(plain) == str(tmp_path / "xla")
  assert compile_cache.default_dir() == plain  # stable within a machine
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
  assert compile_cache.default_dir() != plain
  monkeypatch.delenv("XLA_FLAGS")
  monkeypatch.setattr(compile_cache, "_cpu_identity", lambda: "model name=another CPU")
  assert compile_cache.default_dir() != plain
  monkeypatch.undo()
  monkeypatch.setenv("KJAX_CACHE_DIR", str(tmp_path))
  monkeypatch.setattr(compile_cache.jax, "__version__", "0.0.0")
  assert compile_cache.default_dir() != plain


def test_a_folder_past_its_bound_keeps_its_newest_programs(tmp_path):
  for i in range(6):  # 6 entries of 100 bytes, entry i written at time i
    path = tmp_path / f"entry{i}-cache"
    path.write_bytes(b"x" * 100)
    os.utime(path, (i, i))
  compile_cache._prune(str(tmp_path), 600)  # at the bound: kept
  assert len(os.listdir(tmp_path)) == 6
  compile_cache._prune(str(tmp_path), 500)  # past it: the oldest go, down to half
  assert sorted(os.listdir(tmp_path)) == ["entry4-cache", "entry5-cache"]


def _launch(workdir, cache_root, kmnist_dir, *extra_env):
  flags = [f"--config.data.data_dir={kmnist_dir}", "--config.data.train_split=test[:256]",
           "--config.data.eval_split=test[9800:]", "--config.train.num_epochs=2",
           "--config.train.batch_size=32", f"--config.data.cache_dir={workdir}-data",
           "--config.model.channels=(8,16)", "--config.eval.at_end_of_training=False"]
  env = {**os.environ, "KJAX_CACHE_DIR": str(cache_root), **dict(extra_env)}
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "launch.py"), "--config=configs/beta_vae.py",
       f"--workdir={workdir}", *flags], cwd=REPO, capture_output=True, text=True,
      timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, "timing.json")) as f:
    return json.load(f)


def test_a_run_with_a_warm_cache_equals_the_run_that_compiled(kmnist_dir, tmp_path):
  """The cold run compiles every program, as a run without the cache does, and fills the
  cache; the warm run loads them and ends with the same state and records."""
  cache = tmp_path / "cache"
  cold = _launch(str(tmp_path / "cold"), cache, kmnist_dir)
  warm = _launch(str(tmp_path / "warm"), cache, kmnist_dir)
  assert cold["compile_cache"]["misses"] > 0
  # The warm launch compiles nothing that the cold one compiled: its train step is a load.
  assert warm["compile_cache"]["hits"] >= cold["compile_cache"]["misses"] > 0
  assert warm["compile_cache"]["misses"] == 0, warm["compile_cache"]
  step_cold, state_cold = latest_checkpoint_state(str(tmp_path / "cold"))
  step, state = latest_checkpoint_state(str(tmp_path / "warm"))
  assert step == step_cold == 16
  for a, b in zip(jax.tree.leaves(state_cold), jax.tree.leaves(state), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for record in ("metrics.jsonl", "summary.json"):
    with open(tmp_path / "cold" / record) as f, open(tmp_path / "warm" / record) as g:
      assert f.read() == g.read(), record
