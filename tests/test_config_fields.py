"""The table of config fields (``kjax.config_fields``): every shipped config's fields have a
row, each row's check refuses what it should, and the roles are what the readers use."""

import os
import subprocess
import sys

import ml_collections
import pytest

import kjax

from kjax import config_fields
from kjax import configs
from kjax import errors
from kjax import tasks
from kjax import validation
from kjax import workdir_config
from kjax.evaluation import run as evaluation_run
from tests.conftest import REPO


def _run_configs():
  """(name, run config) of every shipped config: each study of the benchmark too."""
  for name in configs.NAMES:
    config = configs.get_config(name)
    if "studies" in config:
      for study, sub in config.studies.items():
        yield f"{name}.studies.{study}", sub
    else:
      yield name, config


@pytest.mark.parametrize("name,config", list(_run_configs()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_every_field_of_every_shipped_config_has_a_row(name, config):
  table = tasks.fields_of(config.model)
  missing = [k for k in workdir_config.flatten(config)
             if config_fields.lookup(table, k) is None]
  assert not missing, f"configs/{name}: no row in the table of config fields for {missing}"
  assert tasks.unknown_fields(config) == []


def test_the_benchmark_config_is_checked_study_by_study():
  config = configs.get_config("benchmark")
  assert tasks.unknown_fields(config) == []
  config.studies.cvae.model.widht = 3
  config.typo = 1
  assert tasks.unknown_fields(config) == ["typo", "studies.cvae.model.widht"]


def test_a_config_with_a_field_no_row_describes_is_refused_before_anything_is_written(
    tmp_path):
  config = configs.get_config("cvae")
  config.model.hiden = 8
  with pytest.raises(errors.ConfigError, match=r"config\.model\.hiden"):
    kjax.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_config_file_must_return_a_config_dict(tmp_path):
  (tmp_path / "own.py").write_text("def get_config():\n  return {'seed': 0}\n")
  result = subprocess.run([sys.executable, os.path.join(REPO, "launch.py"),
                           f"--config={tmp_path / 'own.py'}", f"--workdir={tmp_path / 'w'}"],
                          capture_output=True, text=True)
  assert result.returncode != 0
  assert "get_config() returned a dict; expected an ml_collections.ConfigDict" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "w").exists()


def test_the_benchmark_fields_have_rows():
  config = configs.get_config("benchmark")
  keys = [k for k in workdir_config.flatten(config) if not k.startswith("studies.")]
  missing = [k for k in keys if config_fields.lookup(
      config_fields.merged(config_fields.SHARED, config_fields.BENCHMARK), k) is None]
  assert not missing


@pytest.mark.parametrize("key,value,message", [
    ("seed", -1, "config.seed=-1 is not allowed: expected an integer >= 0"),
    ("seed", 2**32, "expected an integer >= 0 and <= 4294967295"),
    ("train.batch_size", True, "config.train.batch_size=True is not allowed"),
    ("optim.learning_rate", 0.0, "expected a finite number > 0"),
    ("data.verify_checksums", "yes", "expected True or False"),
    ("data.binarize", "always", "expected one of ('none', 'dynamic', 'static')"),
    ("model.channels", (0, 4), "expected 1 to 4 positive integers"),
    ("train.steps_per_call", "fast", "expected 'auto' or an integer >= 1"),
    ("eval.prdc_k", 101, "expected an integer >= 1 and <= 100"),
    ("mesh.runs", -1, "config.mesh.runs=-1 is not allowed"),
])
def test_each_row_refuses_a_bad_value_with_one_line(key, value, message):
  config = ml_collections.ConfigDict(configs.get_config("beta_vae").to_dict(), type_safe=False)
  section, _, field = key.rpartition(".")
  (config[section] if section else config)[field] = value
  with pytest.raises(errors.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                     .replace(".", r"\.").replace("+", r"\+").replace("?", r"\?")) as e:
    validation.validate_config(config)
  assert "\n" not in str(e.value)


def test_the_roles_of_a_few_fields():
  table = config_fields.SHARED
  keys = ["train.num_epochs", "train.batch_size", "eval.iwae_samples", "mesh.data",
          "eval.epoch_iwae_samples", "seed", "sweep.beta", "unknown.key"]
  assert config_fields.keys_with(table, keys, "resumable") == [
      "train.num_epochs", "eval.iwae_samples", "mesh.data", "eval.epoch_iwae_samples",
      "sweep.beta"]
  # an unknown key is an input of the evaluation (the safe reading) and nothing else
  assert config_fields.keys_with(table, keys, "eval_input") == [
      "train.batch_size", "eval.iwae_samples", "eval.epoch_iwae_samples", "seed",
      "unknown.key"]
  assert config_fields.keys_with(table, keys, "final_eval_only") == ["eval.iwae_samples"]
  assert "seed" in config_fields.keys_with(table, keys, "stackable")


def test_the_evaluation_records_its_inputs_from_the_table():
  config = configs.get_config("cvae")
  recorded = evaluation_run.inputs(config, 10, None)["config"]
  assert "eval.iwae_samples" in recorded and "train.batch_size" in recorded
  assert "objective.beta" in recorded  # a family field: changes the numbers
  assert "train.num_epochs" not in recorded and "mesh.data" not in recorded
  assert not any(k.startswith(("figures.", "sweep.")) for k in recorded)


def test_a_table_row_needs_a_known_kind():
  with pytest.raises(ValueError, match="kind='float'"):
    config_fields.Field("a.b", "float", "meaning")


def test_the_table_imports_without_jax():
  # --help reads the table: it must stay light
  code = ("import sys, kjax.config_fields; "
          "print('jax' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True).stdout.strip()
  assert out == "False"


def test_help_gives_each_field_its_meaning():
  text = subprocess.run([sys.executable, os.path.join(REPO, "launch.py"), "--config=cvae",
                         "--help"], capture_output=True, text=True, check=True).stdout
  assert "train.batch_size = 100  # examples per train step (an integer >= 1)" in text
  assert "seed = 0  # root of every PRNG stream" in text


def test_a_family_row_replaces_the_shared_row():
  rows = config_fields.merged(config_fields.SHARED, {
      "optim.learning_rate": config_fields.Field("optim.learning_rate", "real", "lr", 0,
                                                 low_open=True)})
  assert not rows["optim.learning_rate"].stackable
  assert config_fields.SHARED["optim.learning_rate"].stackable


def test_docs_configs_md_holds_the_table_the_code_reads():
  with open(os.path.join(REPO, "docs", "configs.md"), encoding="utf-8") as f:
    text = f.read()
  start = text.index("<!-- generated: the table of config fields -->\n")
  end = text.index("<!-- end of the generated table -->")
  generated = text[start:end].split("\n", 1)[1]
  expected = config_fields.markdown({n: tasks.TASKS[n].table() for n in tasks.BUILTIN})
  assert generated == expected, ("docs/configs.md's table of config fields is out of date: "
                                 "regenerate it (the command above the table)")


def test_a_figure_setting_of_another_family_is_refused_not_ignored():
  config = configs.get_config("cgan")
  config.figures.grid_size = 8  # the β-VAE's latent grid: the CGAN draws none
  assert tasks.unknown_fields(config) == ["figures.grid_size"]
  config = configs.get_config("cgan")
  config.figures.interpolate_classes = (0, 99)  # every generator's interpolation figure
  with pytest.raises(errors.ConfigError, match=r"figures\.interpolate_classes=\(0, 99\)"):
    validation.validate_config(config)
  with config.figures.ignore_type():  # a config file's value: not a pair
    config.figures.interpolate_classes = 5
  with pytest.raises(errors.ConfigError, match=r"figures\.interpolate_classes=5 .*two class"):
    validation.validate_config(config)
  config = configs.get_config("classifier")
  config.figures.preview_every_epochs = 5  # the classifier has no previews
  assert tasks.unknown_fields(config) == ["figures.preview_every_epochs"]
  assert tasks.unknown_fields(configs.get_config("beta_vae")) == []
