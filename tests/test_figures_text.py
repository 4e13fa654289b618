"""The inpainting figure's composition (patch filled in), and the citations of user-visible text."""

import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from kjax import eval_figures
from kjax.evaluation import inpainting

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Files whose text users read: figure titles, report.html, log and error messages, --help,
# docstrings, the benchmarks' output and the benchmark page.
USER_VISIBLE = ("kjax/figures.py", "kjax/eval_figures.py", "kjax/report.py", "kjax/tasks/*.py",
                "configs/*.py", "kjax/objectives.py", "kjax/frames.py", "benchmarks/*.py",
                "docs/benchmark.md")
# "seed 003" reads as config.seed = 3: the source documents are cited by author and title.
FILE_NUMBER_CITATION = re.compile(
    r"\bseeds?\s+00[0-4]\b|\bseed's\b|\bseeds'|\bseed\s+documents?\b", re.IGNORECASE)


def test_fill_patch_is_original_outside_and_reconstruction_inside():
  rng = np.random.default_rng(0)
  original = rng.uniform(size=(2, 6, 6, 1)).astype(np.float32)
  reconstruction = rng.uniform(size=(2, 6, 6, 1)).astype(np.float32)
  kept = original.copy()
  patch = (slice(1, 3), slice(2, 5))
  inside = np.zeros((6, 6), bool)
  inside[patch] = True

  filled = inpainting.fill_patch(original, reconstruction, patch)

  assert filled.shape == original.shape and filled.dtype == original.dtype
  np.testing.assert_array_equal(filled[:, inside], reconstruction[:, inside])
  np.testing.assert_array_equal(filled[:, ~inside], original[:, ~inside])
  np.testing.assert_array_equal(original, kept)  # the inputs are not written to
  masked = inpainting.mask_patch(original, patch)
  assert np.all(masked[:, inside] == 0) and np.array_equal(masked[:, ~inside], original[:, ~inside])


def test_fill_patch_default_is_the_central_10x10_and_shapes_must_match():
  original, reconstruction = np.zeros((1, 28, 28, 1)), np.ones((1, 28, 28, 1))
  filled = inpainting.fill_patch(original, reconstruction)
  assert filled.sum() == 100 and filled[0, 9:19, 9:19].min() == 1
  with pytest.raises(ValueError, match="shape"):
    inpainting.fill_patch(original, reconstruction[:, :27])


def test_inpainting_figure_is_written(tmp_path):
  rng = np.random.default_rng(1)
  original = rng.uniform(size=(3, 28, 28, 1)).astype(np.float32)
  reconstruction = rng.uniform(size=(3, 28, 28, 1)).astype(np.float32)
  masked = inpainting.mask_patch(original)
  path = eval_figures.plot_inpainting(
      str(tmp_path / "inpainting.png"), original, masked,
      inpainting.fill_patch(original, reconstruction), reconstruction, "test",
      patch=inpainting.PATCH)
  assert eval_figures.INPAINTING_ROWS == ("original", "masked", "patch filled in",
                                     "full reconstruction")
  with Image.open(path) as image:
    assert image.format == "PNG" and image.width > 100 and image.height > 100


def test_user_visible_text_cites_documents_not_file_numbers():
  files = sorted({p for pattern in USER_VISIBLE for p in ROOT.glob(pattern)})
  assert len(files) > 5
  hits = []
  for p in files:  # over the whole text: a citation may be wrapped across lines
    text = p.read_text(encoding="utf-8")
    for m in FILE_NUMBER_CITATION.finditer(text):
      line = text.count("\n", 0, m.start()) + 1
      hits.append(f"{p.relative_to(ROOT)}:{line}: {m.group()!r}")
  assert not hits, "cite the source document by author and title:\n" + "\n".join(hits)
