"""docs/quickstart.ipynb, the Python API's walk-through, runs from top to bottom (nbclient):
it trains a small CVAE with ``kjax.train_and_evaluate``, draws a class × style sheet and
calls the generation API."""

import json
import os

import nbclient
import nbformat

from tests.conftest import REPO


def test_quickstart_notebook_executes(kmnist_dir, tmp_path, monkeypatch):
  path = os.path.join(REPO, "docs", "quickstart.ipynb")
  notebook = nbformat.read(path, as_version=4)
  monkeypatch.setenv("KJAX_KMNIST_DIR", kmnist_dir)
  monkeypatch.setenv("KJAX_NOTEBOOK_WORKDIR", str(tmp_path / "cvae"))
  monkeypatch.setenv("KJAX_CACHE_DIR", str(tmp_path / "cache"))
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": os.path.dirname(path)}})
  client.execute()  # raises CellExecutionError, with the cell and its traceback, on failure
  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(images) == 2  # the class × style sheet and the generated row
  text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
  assert "(8, 28, 28, 1) float32 True True" in text
  summary = json.loads((tmp_path / "cvae" / "summary.json").read_text())
  assert summary["epoch"] == 3 and summary["eval/nelbo"] > 0
