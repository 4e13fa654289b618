"""Shared fixtures: the real KMNIST/MNIST test splits in ../shared/data and tiny configs.

The whole session, and every process it starts, shares one persistent compilation cache
(``kjax.compile_cache``): ``$KJAX_TEST_CACHE_DIR`` if set (a folder CI can keep), else a
temporary folder removed at the end. A program compiled by one test (or one xdist worker)
is loaded, not compiled, by the next that needs it."""

import json
import os
import shutil
import tempfile

# Made by the first process of the session (pytest, or xdist's controller); its workers and
# every subprocess inherit the variables. Set before kjax or JAX compile anything.
_TEMP_CACHE = not os.environ.get("KJAX_TEST_CACHE_DIR")
if _TEMP_CACHE:
  os.environ["KJAX_TEST_CACHE_DIR"] = tempfile.mkdtemp(prefix="kjax-test-cache-")
os.environ["KJAX_CACHE_DIR"] = os.environ["KJAX_TEST_CACHE_DIR"]

# The suite compiles with XLA's backend (LLVM) optimisation off: most of its time is
# compiling hundreds of tiny programs that then run for a few steps, and level 0 compiles
# them about 1.8x faster (tests/test_conv.py and test_models.py: 67 s -> 38 s). Every
# comparison in the suite is between programs compiled alike (subprocesses inherit the
# flag). KJAX_TEST_OPTIMIZED=1 runs the suite on XLA's default, optimised build.
if os.environ.get("KJAX_TEST_OPTIMIZED", "") in ("", "0"):
  _O0 = "--xla_backend_optimization_level=0"
  if _O0 not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_O0}".strip()

# Under pytest-xdist each worker gets its own share of the CPUs (and so do the processes it
# starts): XLA sizes its thread pools by the CPUs a process may use, and two workers' pools
# on the same two cores spin against each other. Measured here (benchmarks/suite_profile):
# one process 1,166 s, two workers 970 s unpinned, 929 s pinned.
_WORKER, _WORKERS = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get(
    "PYTEST_XDIST_WORKER_COUNT")
if _WORKER and _WORKERS and hasattr(os, "sched_setaffinity"):
  _cpus = sorted(os.sched_getaffinity(0))
  if len(_cpus) >= int(_WORKERS) > 1:
    os.sched_setaffinity(0, _cpus[int(_WORKER[2:])::int(_WORKERS)])

import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402
import pytest  # noqa: E402

from configs import beta_vae  # noqa: E402
from kjax import compile_cache  # noqa: E402

compile_cache.enable()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


# The files that take longest (benchmarks/suite_profile), started first: with two workers a
# long file left for the end would run alone.
SLOW_FILES = ("test_scale_out.py", "test_fault_matrix.py", "test_sweep.py", "test_fault_peers.py", "test_train.py", "test_generate.py",
              "test_evaluate.py", "test_faults.py", "test_cgan.py", "test_records.py",
              "test_launch.py", "test_conv.py", "test_compile_cache.py", "test_vae_family.py")


def pytest_collection_modifyitems(items):
  def rank(item):
    name = os.path.basename(str(item.fspath))
    return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)
  items.sort(key=rank)  # stable: a file's own order is kept


def pytest_sessionfinish(session):
  if _TEMP_CACHE:
    shutil.rmtree(os.environ["KJAX_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def kmnist_dir() -> str:
  """Folder with the official KMNIST test files (checked out beside the repo)."""
  path = os.path.join(SHARED_DATA, "kmnist")
  assert os.path.isfile(os.path.join(path, "t10k-images-idx3-ubyte.gz")), (
      f"the tests read the real KMNIST test split from {path}")
  return path


@pytest.fixture(scope="session")
def mnist_dir() -> str:
  path = os.path.join(SHARED_DATA, "mnist")
  assert os.path.isfile(os.path.join(path, "t10k-images-idx3-ubyte.gz")), path
  return path


def on_real_kmnist(config, kmnist_dir, tmp_path, train_split="test[:256]",
                   eval_split="test[9800:]", num_epochs=2, batch_size=32):
  """Points ``config`` at the real KMNIST test files with a temp cache and a short
  schedule (log and checkpoint every 4 steps, one step per call); returns it."""
  config.data.name = "kmnist"
  config.data.data_dir = kmnist_dir
  config.data.train_split = train_split
  config.data.eval_split = eval_split
  config.data.cache_dir = str(tmp_path / "cache")
  config.train.num_epochs = num_epochs
  config.train.batch_size = batch_size
  config.train.log_every_steps = 4
  config.train.checkpoint_every_steps = 4
  # One step per call ('auto' gives the MLPs 8 here): the kill-and-resume tests stop at a
  # given checkpoint step, and a chunk of 8 steps would skip it.
  config.train.steps_per_call = "1"
  return quick_eval(config)


def quick_eval(config):
  """Shrinks ``config.eval`` to test size (k = 16 for the IWAE bound, 2 KID subsets, no
  CAS: tests/test_evaluation_metrics.py runs it)."""
  config.eval.iwae_samples = 16
  config.eval.cas_epochs = 0
  config.eval.iwae_chunk_size = 8
  config.eval.kid_subsets = 2
  return config


def train_kmnist_classifier(kmnist_dir, workdir, cache_dir):
  """A domain classifier trained for 2 epochs on 2,000 real KMNIST images (batch 64);
  returns its ``summary.json`` content."""
  from configs import classifier  # noqa: PLC0415
  from kjax import experiment  # noqa: PLC0415
  config = classifier.get_config()
  config.data.data_dir = kmnist_dir
  config.data.train_split = "test[:2000]"
  config.data.eval_split = "test[9000:]"
  config.data.cache_dir = cache_dir
  config.train.num_epochs = 2
  config.train.batch_size = 64
  config.train.checkpoint_every_steps = 1000
  return experiment.train_and_evaluate(config, workdir)


@pytest.fixture(scope="session")
def kmnist_classifier(kmnist_dir, tmp_path_factory):
  """``(workdir, summary)`` of ``train_kmnist_classifier``, trained once per session."""
  root = tmp_path_factory.mktemp("classifier")
  workdir = str(root / "run")
  return workdir, train_kmnist_classifier(kmnist_dir, workdir, str(root / "cache"))


class Killed(Exception):
  """Raised by ``die_after_save``: a run "killed" right after a checkpoint was written."""


def die_after_save(monkeypatch, step: int, nth: int = 1) -> None:
  """Patches ``Checkpointer.save`` so that the ``nth`` save of ``step`` completes and then
  raises ``Killed``, as a SIGKILL just after that checkpoint would; ``monkeypatch.undo()``
  restores it."""
  from kjax import checkpointing  # noqa: PLC0415
  original = checkpointing.Checkpointer.save
  seen = []

  def save_then_die(self, s, items, records=None):
    original(self, s, items, records)
    if s == step:
      seen.append(s)
      if len(seen) == nth:
        self.close()
        raise Killed

  monkeypatch.setattr(checkpointing.Checkpointer, "save", save_then_die)


def latest_checkpoint_state(workdir):
  """``(step, state)`` of a run's newest checkpoint, restored as plain arrays."""
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  step = manager.latest_step()
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  return step, restored["state"]


def make_tiny_config(kmnist_dir, tmp_path):
  """The β-VAE config shrunk to seconds: 256 real KMNIST images, batch 32, 2 epochs."""
  config = on_real_kmnist(beta_vae.get_config(), kmnist_dir, tmp_path)
  config.model.channels = (8, 16)
  config.train.eval_batch_size = 128
  config.figures.grid_size = 4
  return config


@pytest.fixture
def tiny_config(kmnist_dir, tmp_path):
  """``make_tiny_config`` with the test's own data cache."""
  return make_tiny_config(kmnist_dir, tmp_path)


@pytest.fixture(scope="session")
def tiny_run(kmnist_dir, tmp_path_factory):
  """``(config, workdir)`` of ``make_tiny_config`` trained and evaluated once per session
  (``experiment.train_and_evaluate``). Read it, never change it: a test that changes a
  run copies it first (``copy_run``)."""
  from kjax import experiment  # noqa: PLC0415
  root = tmp_path_factory.mktemp("tiny_run")
  config = make_tiny_config(kmnist_dir, root)
  workdir = str(root / "run")
  experiment.train_and_evaluate(config, workdir)
  return config, workdir


def evaluate_with(config, workdir: str, **eval_settings) -> dict:
  """``--mode=evaluate`` of the run in ``workdir`` with ``config.eval`` changed by
  ``eval_settings``; returns the ``eval/metrics.json`` it wrote."""
  from kjax import launcher  # noqa: PLC0415
  for name, value in eval_settings.items():
    config.eval[name] = value
  assert launcher.run(config, workdir, mode="evaluate") == 0
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    return json.load(f)


def copy_run(workdir: str, destination: str) -> str:
  """A copy of the run in ``workdir`` (checkpoints, records, figures) at ``destination``."""
  shutil.copytree(workdir, destination)
  return destination


def write_synthetic_k49(folder, n_train: int = 300, n_test: int = 120, seed: int = 0):
  """Writes Kuzushiji-49 files in the official format (npz, key ``arr_0``): uint8 images
  ``[N, 28, 28]`` of random strokes and uint8 labels ``[N]`` in 0..48 (every class present).

  Returns:
    ``{split: (images, labels)}``.
  """
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in (("train", n_train), ("test", n_test)):
    labels = (np.arange(n) % 49).astype(np.uint8)
    rng.shuffle(labels)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):  # a few bright bars; thickness varies, so styles differ
      for _ in range(3):
        r, c, w = rng.integers(2, 24), rng.integers(2, 20), rng.integers(1, 4)
        images[i, r:r + w, c:c + 8] = rng.integers(128, 256)
    np.savez_compressed(os.path.join(folder, f"k49-{split}-imgs.npz"), images)
    np.savez_compressed(os.path.join(folder, f"k49-{split}-labels.npz"), labels)
    arrays[split] = (images, labels)
  return arrays


@pytest.fixture
def synthetic_k49_dir(tmp_path):
  folder = tmp_path / "k49"
  folder.mkdir()
  write_synthetic_k49(str(folder))
  return str(folder)
