"""kjax's imports go down its layers, never up (``docs/architecture.md``), and no function or
module grows past what one can read: 80 lines a function, 400 a module."""

import ast
import pathlib

import pytest

from tests.conftest import REPO

KJAX = pathlib.Path(REPO) / "kjax"

# Lowest first. A module may import its own layer and those below; prefixes name packages.
LAYERS = (
    ("services", ("kjax.errors", "kjax.version", "kjax.config_checks", "kjax.files",
                  "kjax.content_cache", "kjax.peers",
                  "kjax.progress", "kjax.preemption", "kjax.compile_cache", "kjax.sharding",
                  "kjax.autotune", "kjax.workdir_config", "kjax.metric_writers",
                  "kjax.report", "kjax.frames", "kjax.metrics", "kjax.objectives",
                  "kjax.checkpointing", "kjax.data", "kjax.figures", "kjax.eval_figures")),
    ("models", ("kjax.models",)),
    ("fields", ("kjax.config_fields", "kjax.rng")),
    ("tasks", ("kjax.tasks",)),
    ("checks", ("kjax.validation", "kjax.evaluator", "kjax.workdir", "kjax.trained")),
    ("loop", ("kjax.train", "kjax.evaluation", "kjax.generate")),
    ("experiment", ("kjax.experiment", "kjax.results")),
    ("studies", ("kjax.sweep", "kjax.benchmark")),
    ("launcher", ("kjax.launcher",)),
    ("entry points", ("kjax.cli", "kjax.configs", "kjax")),
)
TABLES = ()  # modules that are tables of data, exempt from the module length limit


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in sorted(KJAX.rglob("*.py")):
    parts = path.relative_to(KJAX.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    out[name] = path
  return out


def _layer(module: str) -> int:
  best = None
  for i, (_, prefixes) in enumerate(LAYERS):
    for prefix in prefixes:
      if module == prefix or module.startswith(prefix + "."):
        if best is None or len(prefix) > best[1]:
          best = (i, len(prefix))
  if best is None:
    raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py "
                         "and to docs/architecture.md")
  return best[0]


def _imports(name: str, path: pathlib.Path) -> set[str]:
  """Every kjax module ``name`` imports, at the top or inside a function."""
  package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{anchor}.{base}" if base else anchor
      for alias in node.names:
        out.add(f"{base}.{alias.name}")
  modules = _modules()
  resolved = set()
  for target in out:
    if not target.startswith("kjax"):
      continue
    while target not in modules and "." in target and target != "kjax.configs":
      target = target.rsplit(".", 1)[0]
    resolved.add(target)
  resolved.discard(name)
  return resolved


def test_every_import_goes_down_the_layers():
  upward = []
  for name, path in _modules().items():
    for target in _imports(name, path):
      if target == "kjax" and name != "kjax":
        upward.append(f"{name} imports the package root")
      elif _layer(target) > _layer(name):
        upward.append(f"{name} ({LAYERS[_layer(name)][0]}) imports {target} "
                      f"({LAYERS[_layer(target)][0]})")
  assert not upward, "imports up the layers:\n" + "\n".join(sorted(upward))


def test_the_layer_check_sees_an_upward_import(tmp_path, monkeypatch):
  package = tmp_path / "kjax"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "errors.py").write_text("def f():\n  from kjax import launcher\n")
  (package / "launcher.py").write_text("from kjax import errors\n")
  monkeypatch.setattr(__import__(__name__, fromlist=["KJAX"]), "KJAX", package)
  with pytest.raises(AssertionError, match="kjax.errors \\(services\\) imports kjax.launcher"):
    test_every_import_goes_down_the_layers()


@pytest.mark.parametrize("limit", [80])
def test_no_function_is_longer_than_80_lines(limit):
  long = []
  for name, path in _modules().items():
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > limit:
          long.append(f"{name}.{node.name}: {length} lines")
  assert not long, long


def test_no_module_is_longer_than_400_lines():
  long = [f"{name}: {n} lines" for name, path in _modules().items()
          if name not in TABLES and (n := len(path.read_text().splitlines())) > 400]
  assert not long, long
