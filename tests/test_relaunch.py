"""A finished run launched again skips its evaluation only when nothing it depends on has
changed (``kjax.evaluation.is_up_to_date``); the end-to-end case is in tests/test_launch.py."""

import json

from kjax import configs
from kjax import evaluation


def _evaluated(tmp_path, config, step=8):
  (tmp_path / "eval").mkdir()
  (tmp_path / "eval" / "metrics.json").write_text(
      json.dumps({"inputs": evaluation.inputs(config, step, None)}))
  (tmp_path / "report.html").write_text("<html></html>")
  return str(tmp_path)


def test_an_unchanged_evaluation_is_up_to_date_and_any_input_change_is_not(tmp_path):
  config = configs.get_config("beta_vae")
  workdir = _evaluated(tmp_path, config)
  assert evaluation.is_up_to_date(config, workdir, 8, None)
  assert not evaluation.is_up_to_date(config, workdir, 9, None)  # a newer checkpoint
  for key, value in (("eval.iwae_samples", 100), ("train.eval_batch_size", 500),
                     ("data.data_dir", "/elsewhere"), ("eval.classifier_workdir", "none")):
    changed = configs.get_config("beta_vae")
    section, name = key.split(".")
    changed[section][name] = value
    assert not evaluation.is_up_to_date(changed, workdir, 8, None), key
  # Settings that cannot change the numbers do not force a new evaluation.
  logistic = configs.get_config("beta_vae")
  logistic.train.log_every_steps = 7
  logistic.figures.grid_size = 3
  assert evaluation.is_up_to_date(logistic, workdir, 8, None)
  (tmp_path / "report.html").unlink()  # an evaluation cut short before its report
  assert not evaluation.is_up_to_date(config, workdir, 8, None)


def test_a_damaged_metrics_file_is_not_up_to_date(tmp_path):
  config = configs.get_config("beta_vae")
  workdir = _evaluated(tmp_path, config)
  (tmp_path / "eval" / "metrics.json").write_text("{not json")
  assert not evaluation.is_up_to_date(config, workdir, 8, None)
