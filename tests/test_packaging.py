"""The wheel (``pip wheel .``) holds what a user needs: every package, the shipped configs
(``kjax.configs``), the reference evaluators, the LICENSE and a ``kjax`` console script with
``launch.py``'s flags. It is built offline and installed in a fresh venv whose only other
packages are this venv's dependencies (a ``.pth`` line: no download, and not the checkout's
editable kjax), then run from a directory outside the checkout."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  # Built from a clean copy: setuptools writes build/ into the source tree, and stale files
  # there would reach the wheel.
  source = tmp_path_factory.mktemp("source") / "kjax"
  shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
      ".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
  out = tmp_path_factory.mktemp("wheel")
  subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                  "-w", str(out), str(source)], check=True, capture_output=True, timeout=300)
  (path,) = out.glob("kjax-*.whl")
  return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
  """A fresh venv with the wheel installed; returns its bin/ directory."""
  venv = tmp_path_factory.mktemp("venv")
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
  fresh_site = subprocess.run(
      [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
      check=True, capture_output=True, text=True).stdout.strip()
  with open(os.path.join(fresh_site, "dependencies.pth"), "w") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")  # numpy, jax, ...; no .pth of its own runs
  subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                  "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
  return venv / "bin"


def test_wheel_holds_every_package_the_configs_the_evaluators_and_the_license(wheel):
  names = zipfile.ZipFile(wheel).namelist()
  for package in ("kjax", "kjax/configs", "kjax/data", "kjax/evaluation", "kjax/models",
                  "kjax/tasks"):
    assert f"{package}/__init__.py" in names, package
  for config in ("beta_vae", "cvae", "cgan", "common", "beta_vae_sweep", "benchmark"):
    assert f"kjax/configs/{config}.py" in names
  # Every module of the checkout's packages is in the wheel (a new subpackage must be listed
  # in pyproject.toml).
  for root, _, files in os.walk(os.path.join(REPO, "kjax")):
    for name in files:
      if name.endswith(".py"):
        assert os.path.relpath(os.path.join(root, name), REPO) in names, name
  for name in names:  # and nothing else (no stale build output)
    if name.endswith(".py") and not name.startswith("kjax/configs/"):
      assert os.path.isfile(os.path.join(REPO, name)), name
  assert any(n.startswith("kjax/evaluation/reference/") and n.endswith(".npz") for n in names)
  assert any(n.endswith("licenses/LICENSE") for n in names)
  entry_points = zipfile.ZipFile(wheel).read(
      next(n for n in names if n.endswith("entry_points.txt"))).decode()
  assert "kjax = kjax.__main__:main" in entry_points


def test_installed_console_script_runs_an_experiment(installed, kmnist_dir, tmp_path):
  env = {**os.environ, "KJAX_CACHE_DIR": str(tmp_path / "cache")}
  env.pop("PYTHONPATH", None)

  def kjax(*args):
    return subprocess.run([str(installed / "kjax"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)

  where = subprocess.run([str(installed / "python"), "-c", "import kjax; print(kjax.__file__)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
  assert where.stdout.startswith(str(installed.parent)), where.stdout  # the wheel, not REPO
  result = kjax("--help")
  assert result.returncode == 0 and "objective.beta = 4.0" in result.stdout
  result = kjax("--config=cvae", "--config.model.latent_dmi=3")
  assert result.returncode == 1
  assert result.stderr.strip().startswith("kjax: error: --config.model.latent_dmi")
  result = kjax("--config=cvae", "--workdir=cvae", "--config.data.name=kmnist",
                f"--config.data.data_dir={kmnist_dir}", "--config.data.train_split=test[:300]",
                "--config.data.eval_split=test[9800:]", "--config.train.num_epochs=1",
                "--config.eval.at_end_of_training=False")
  assert result.returncode == 0, result.stderr[-3000:]
  assert (tmp_path / "cvae" / "summary.json").is_file()
  assert (tmp_path / "cvae" / "figures" / "class_style_samples.png").stat().st_size > 10_000
