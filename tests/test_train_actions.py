"""The loop's actions on their own (``kjax.train.actions``): which steps of a chunk are
log points, and the window means between two host copies of the running sums."""

import math

import numpy as np
import pytest

from kjax.train import actions
from kjax.train.program import Tick


class _Program:
  log_every = 20


def _points(step, n, epoch_end=False, save_due=False):
  sync = actions.Sync.__new__(actions.Sync)
  sync.program = _Program()
  return sync.log_points(Tick(step=step, epoch=0, n=n, epoch_end=epoch_end,
                              save_due=save_due, marks=None))


@pytest.mark.parametrize("step,n,epoch_end,save_due,expected", [
    (80, 80, True, False, [20, 40, 60, 80]),   # a CVAE epoch in one chunk: 4 points
    (160, 80, True, False, [100, 120, 140, 160]),
    (19, 1, False, False, []),                 # one step per call, between points
    (20, 1, False, False, [20]),
    (50, 10, False, True, [50]),               # a checkpoint step is a point
    (45, 10, True, False, [40, 45]),           # so is an epoch end
])
def test_log_points_are_every_log_step_inside_the_chunk(step, n, epoch_end, save_due, expected):
  assert _points(step, n, epoch_end, save_due) == expected


def test_window_means_difference_the_running_sums():
  since = {"loss": np.array([2.0, 4.0]), "count": np.array([2.0, 2.0])}
  host = {"loss": np.array([8.0, 4.0]), "count": np.array([5.0, 2.0])}
  means = actions.window_means(("loss",), host, since)
  assert means[0] == {"loss": 2.0}  # (8 - 2) / (5 - 2)
  assert math.isnan(means[1]["loss"])  # no step in the window
  assert actions.window_means(("loss",), host) == [{"loss": 1.6}, {"loss": 2.0}]


def test_previews_and_progress_figures_on_their_own_cadences(kmnist_dir, tmp_path):
  """``figures.preview_every_epochs`` (frames/, TensorBoard images) and ``figures.
  progress_every_epochs`` (figures/progress/): every N-th epoch, the first and the last;
  the evaluation row every epoch."""
  import json  # noqa: PLC0415
  import os  # noqa: PLC0415

  from configs import cgan as cgan_config  # noqa: PLC0415
  from kjax import frames, train  # noqa: PLC0415
  from tests.conftest import on_real_kmnist  # noqa: PLC0415

  config = on_real_kmnist(cgan_config.get_config(), kmnist_dir, tmp_path,
                          train_split="test[:64]", num_epochs=5)
  config.model.architecture, config.model.hidden = "mlp", 16
  config.train.steps_per_call = "auto"
  config.figures.samples_per_style = 1
  config.figures.preview_every_epochs, config.figures.progress_every_epochs = 2, 3
  workdir = str(tmp_path / "run")
  run = train.train(config, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert run.step == 10 and [json.loads(line)["epoch"] for line in f] == [1, 2, 3, 4, 5]
  assert frames.load_frames(os.path.join(workdir, frames.FRAMES_DIR))[0] == [1, 2, 4, 5]
  assert sorted(os.listdir(os.path.join(workdir, "figures", "progress"))) == [
      "epoch_0001.png", "epoch_0003.png", "epoch_0005.png"]
