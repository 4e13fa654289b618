"""The command line (``kjax.cli``, behind ``launch.py`` and the ``kjax`` script): ``--help``
and one-line errors for every bad flag, before anything is written. Each call is a fresh
process that stops before JAX is imported (well under a second)."""

import os
import subprocess
import sys

import pytest

from kjax import cli
from kjax import configs
from tests.conftest import REPO


def _launch(*args, cwd=REPO):
  return subprocess.run([sys.executable, os.path.join(REPO, "launch.py"), *args], cwd=cwd,
                        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("flag", ["--help", "--helpfull", "-h"])
def test_help_lists_flags_configs_and_every_field_and_exits_0(flag):
  result = _launch(flag)
  assert result.returncode == 0, result.stderr
  out = result.stdout
  for name in ("--config", "--workdir", "--mode", "--coordinator_address"):
    assert name in out
  assert all(name in out for name in configs.NAMES)
  config = configs.get_config("beta_vae")
  for section in ("data", "model", "objective", "optim", "train", "eval", "mesh", "figures"):
    assert f"[{section}]" in out
  assert f"objective.beta = {config.objective.beta!r}" in out
  assert f"model.latent_dim = {config.model.latent_dim!r}" in out


def test_help_of_another_config_shows_its_defaults():
  result = _launch("--config=cgan", "--help")
  assert result.returncode == 0
  assert "objective.d_steps = " in result.stdout and "objective.beta = " not in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--config.objective.bta=2"],
     "--config.objective.bta: no such config field; did you mean --config.objective.beta"),
    (["--config.objectiv.beta=2"], "did you mean --config.objective.beta"),
    (["--config.objective.beta=abc"], "--config.objective.beta=abc: could not convert string "
     "to float: 'abc' (config.objective.beta is float, e.g. 4.0)"),
    (["--config.model.latent_dim=2.5"], "(config.model.latent_dim is int, e.g. 2)"),
    (["--config.train.num_epochs"], "--config.train.num_epochs"),
    (["--mode=fit"], "--mode=fit: value should be one of <train|evaluate|results|repair>"),
    (["--workdirr=x"], "Unknown command line flag 'workdirr'"),
    (["extra"], "unexpected arguments: extra"),
    (["--noconfig.eval.at_end_of_trainng"], "did you mean --config.eval.at_end_of_training"),
    (["--config.train=3"], "(config.train is a section: set its fields"),
    (["--flagfile=/nonexistent/f"], "Unable to open flagfile"),
])
def test_bad_flags_are_one_line_before_anything_is_written(args, message, tmp_path):
  workdir = tmp_path / "never"
  result = _launch("--config=configs/beta_vae.py", f"--workdir={workdir}", *args)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("kjax: error: "), result.stderr
  assert message in lines[0]
  assert not workdir.exists()


@pytest.mark.parametrize("args, message", [
    ([], "--config is required: a config file or one of beta_vae"),
    (["--config=nope"], "--config='nope': no such config file; give a file or one of"),
    (["--mode=evaluate", "--workdir=/nonexistent/w"], "--workdir='/nonexistent/w' is not a kjax run"),
])
def test_missing_config_or_run_is_one_line(args, message):
  result = _launch(*args)
  assert result.returncode == 1
  assert result.stderr.strip() == f"kjax: error: {result.stderr.strip()[13:]}"
  assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_config_by_name_resolves_to_the_shipped_file(tmp_path, monkeypatch):
  assert cli.resolve_config_arg("cvae") == configs.path("cvae")
  assert cli.resolve_config_arg("cvae:x") == configs.path("cvae") + ":x"
  monkeypatch.chdir(tmp_path)  # no configs/ here: configs/NAME.py means the shipped one
  assert cli.resolve_config_arg("configs/cvae.py") == configs.path("cvae")
  # A user's own folder is never replaced by a shipped config of the same name.
  with pytest.raises(cli.UsageError, match="'my/dir/cvae.py': no such config file"):
    cli.resolve_config_arg("my/dir/cvae.py")
  (tmp_path / "own.py").write_text("def get_config():\n  return 1\n")
  assert cli.resolve_config_arg("own.py") == "own.py"
  result = _launch("--config=cvae", "--config.model.latent_dmi=3", cwd=tmp_path)
  assert result.returncode == 1 and "did you mean --config.model.latent_dim" in result.stderr
  for name in configs.NAMES:  # every shipped config builds and names its model
    assert configs.get_config(name).to_dict()
  with pytest.raises(ValueError, match="unknown config 'nope'"):
    configs.get_config("nope")


def test_evaluation_estimate_for_the_eta_follows_its_work():
  from kjax import evaluation  # noqa: PLC0415
  config = configs.get_config("beta_vae")
  base = evaluation.estimate_seconds(config, "beta_vae", 8000, 2000, 1000.0)
  assert base > 0
  config.eval.iwae_samples *= 2  # the IWAE bound dominates: twice the decoder calls
  assert evaluation.estimate_seconds(config, "beta_vae", 8000, 2000, 1000.0) > 1.8 * base - 20
  assert evaluation.estimate_seconds(config, "beta_vae", 8000, 2000, 2000.0) < base * 1.2
  config.eval.at_end_of_training = False
  assert evaluation.estimate_seconds(config, "beta_vae", 8000, 2000, 1000.0) == 0.0
  cgan = configs.get_config("cgan")  # no IWAE bound; CAS on 2 × 8,000 images, 5 epochs
  run = evaluation.run  # its cost model, measured on this CPU (issue 27)
  assert evaluation.estimate_seconds(cgan, "cgan", 8000, 2000, 1e9) == pytest.approx(
      5 * 2 * 8000 / run.CAS_IMAGES_PER_S + 2000 * run.OTHER_S_PER_EVAL_IMAGE)


def test_a_flagfile_is_checked_like_the_command_line(tmp_path):
  flagfile = tmp_path / "f.flags"
  flagfile.write_text("--config=beta_vae\n--config.objective.bta=3\n")
  result = _launch(f"--flagfile={flagfile}", f"--workdir={tmp_path / 'never'}")
  assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
  assert "did you mean --config.objective.beta" in result.stderr
  # The README's offline data flags are a flagfile of real fields.
  result = _launch("--config=cgan", "--flagfile=configs/kmnist_offline.flags",
                   "--config.train.num_epochs=0", f"--workdir={tmp_path / 'never'}")
  assert result.returncode == 1
  assert "config.train.num_epochs=0 is not allowed" in result.stderr
  assert not (tmp_path / "never").exists()


def test_a_config_file_that_does_not_load_is_one_line(tmp_path):
  (tmp_path / "broken.py").write_text("def get_config(:\n")
  result = _launch(f"--config={tmp_path / 'broken.py'}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      result.stderr.strip()] and "could not be loaded: SyntaxError" in result.stderr
  result = _launch("--config=cvae:foo")
  assert result.returncode == 1 and "get_config() takes 0 positional arguments" in result.stderr
