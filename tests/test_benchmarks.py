"""The benchmark scripts run: the synthetic official-format files load, and the GPU check
works end to end on CPU at its small sizes (marked slow: ~3 min)."""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import synthetic_data  # noqa: E402

from kjax.data import catalog  # noqa: E402
from kjax.data import local  # noqa: E402


def test_synthetic_files_are_official_format(tmp_path):
  folder = synthetic_data.write(str(tmp_path / "k49"), "k49", n_train=98, n_test=49)
  info = catalog.get_dataset_info("k49")
  images, labels = local.load_split_arrays(info, folder, "train", verify_checksums=False)
  assert images.shape[0] == 98 and images.dtype == np.uint8
  assert set(np.unique(labels)) == set(range(49))  # every class present
  assert 0 < (images > 0).mean() < 0.5  # strokes, not noise
  with pytest.raises(ValueError, match="name='emnist' is not one of"):
    synthetic_data.write(str(tmp_path / "x"), "emnist")


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_small(tmp_path):
  out = tmp_path / "check.md"
  result = subprocess.run(
      [sys.executable, "benchmarks/gpu_check.py", f"--out={out}", "--small", "--skip_tests",
       f"--workdir={tmp_path / 'work'}"], cwd=ROOT, capture_output=True, text=True, timeout=900)
  table = out.read_text()
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  for step in ("platform", "β-VAE main job", "CVAE (Shyam 2024)",
               "IWAE bound"):
    assert step in table
  assert "FAILED" not in table and "| exit" not in table
