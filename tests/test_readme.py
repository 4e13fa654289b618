"""The README stays true to the code: every default in its config table is the value in
``configs/*.py``, every config field it names exists, and its commands use real flags."""

import ast
import os
import re

import pytest

from kjax import workdir_config
from kjax import configs
from tests.conftest import REPO

README = os.path.join(REPO, "README.md")
COLUMNS = ("beta_vae", "cvae", "cgan")  # the table's value columns, in order
NOT_USED = object()


def _text():
  with open(README) as f:
    return f.read()


def _table_rows():
  """``(keys, cells)`` of each row of the config table: ``| `config.a.b`, `c` | meaning |
  beta_vae | cvae | cgan |``; ``keys`` are full dotted names (``a.b``, ``a.c``)."""
  rows = []
  for line in _text().splitlines():
    if not line.startswith("| `config."):
      continue
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
    assert len(cells) == 2 + len(COLUMNS), line
    names = re.findall(r"`([^`]+)`", cells[0])
    keys, section = [], None
    for name in names:
      name = name.removeprefix("config.")
      if "." in name:
        section = name.rsplit(".", 1)[0]
      keys.append(name if "." in name or section is None else f"{section}.{name}")
    rows.append((keys, cells[2:]))
  return rows


def _literals(cell: str) -> list[str]:
  """The backquoted texts of ``cell`` outside parenthesised notes: `auto` (`conv` only)."""
  found, depth, i = [], 0, 0
  while i < len(cell):
    if cell[i] == "`":
      end = cell.index("`", i + 1)
      if depth == 0:
        found.append(cell[i + 1:end])
      i = end + 1
      continue
    depth += {"(": 1, ")": -1}.get(cell[i], 0)
    i += 1
  return found


def _values(cell: str, n: int):
  """A cell's values: ``—`` → not used by that model (not compared); ``unset`` → None;
  else n backquoted literals (notes in parentheses aside)."""
  if cell == "—":
    return [NOT_USED] * n
  if cell == "unset":
    return [None] * n
  found = _literals(cell)
  assert len(found) == n, cell
  out = []
  for text in found:
    try:
      out.append(ast.literal_eval(text))
    except (ValueError, SyntaxError):
      out.append(text)  # a bare string: `kmnist`
  return out


def _lookup(config, key):
  node = config
  for part in key.split("."):
    if part not in node:
      return "absent"
    node = node[part]
  return node


def test_the_config_table_matches_configs():
  rows = _table_rows()
  assert len(rows) > 30
  checked = 0
  for keys, cells in rows:
    previous = None
    for name, cell in zip(COLUMNS, cells):
      values = previous if cell == "same" else _values(cell, len(keys))
      config = configs.get_config(name)
      for key, value in zip(keys, values):
        if value is NOT_USED:
          continue
        actual = _lookup(config, key)
        if isinstance(actual, tuple) and isinstance(value, tuple):
          actual, value = list(actual), list(value)
        assert actual == value, f"README: config.{key} = {value!r} for {name}; " \
                                f"configs/{name}.py has {actual!r}"
        checked += 1
      previous = values
  assert checked > 100


def test_every_config_field_named_in_the_readme_exists():
  fields = set()
  for name in configs.NAMES:
    fields |= set(workdir_config.flatten(configs.get_config(name)))
  sections = {f.rsplit(".", 1)[0] for f in fields if "." in f}
  # Examples of a mistyped flag and its error line name a field on purpose.
  text = "\n".join(line for line in _text().splitlines()
                   if not line.startswith(("$ ", "kjax: error:")))
  named = set(re.findall(r"config\.([a-z_]+(?:\.[a-z_0-9]+)+)", text))
  unknown = sorted(n for n in named if n not in fields and n not in sections
                   and not n.startswith(("sweep.", "studies.")) and not n.endswith(".py"))
  assert not unknown, f"README names config fields no config has: {unknown}"


def test_the_readme_cites_documents_by_title_not_file_number():
  assert not re.findall(r"\bseeds? 00[0-4]\b", _text())


@pytest.mark.parametrize("name", COLUMNS)
def test_the_quick_start_commands_use_existing_configs(name):
  assert f"--config={name}" in _text() or f"configs/{name}.py" in _text()


def test_every_link_inside_the_readme_has_its_heading():
  text = _text()
  slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}
  targets = set(re.findall(r"\]\(#([^)]+)\)", text))
  assert targets and not targets - slugs, sorted(targets - slugs)
  for path in re.findall(r"\]\(((?:docs|benchmarks|tests)/[^)#]+)", text):
    assert os.path.exists(os.path.join(REPO, path)), path
