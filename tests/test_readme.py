"""The README and its reference pages stay true to the code: every default in the config
tables (the README's short one, docs/configs.md's full one) is the value in ``configs/*.py``,
every config field they name exists, the README's commands use real flags, every link
resolves, and the README stays a guide (≤ 400 lines)."""

import ast
import glob
import os
import re

import pytest

from kjax import workdir_config
from kjax import configs
from tests.conftest import REPO

CONFIGS_DOC = "docs/configs.md"  # the full config table; the README keeps the fields used most
DOCS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
COLUMNS = ("beta_vae", "cvae", "cgan")  # the table's value columns, in order
NOT_USED = object()
# The tables' sizes: (more rows than, more values checked than).
TABLES = {"README.md": (10, 30), CONFIGS_DOC: (30, 100)}


def _text(doc="README.md"):
  with open(os.path.join(REPO, doc)) as f:
    return f.read()


def _table_rows(doc="README.md"):
  """``(keys, cells)`` of each row of the config tables in ``doc``: ``| `config.a.b`, `c` |
  meaning | beta_vae | cvae | cgan |``; ``keys`` are full dotted names (``a.b``, ``a.c``)."""
  rows = []
  for line in _text(doc).splitlines():
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


@pytest.mark.parametrize("doc", sorted(TABLES))
def test_the_config_table_matches_configs(doc):
  min_rows, min_checked = TABLES[doc]
  rows = _table_rows(doc)
  assert len(rows) > min_rows
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
        assert actual == value, f"{doc}: config.{key} = {value!r} for {name}; " \
                                f"configs/{name}.py has {actual!r}"
        checked += 1
      previous = values
  assert checked > min_checked


def _resolved(keys, cells):
  """A row's values per column, ``same`` replaced by the column before's."""
  out, previous = [], None
  for cell in cells:
    previous = previous if cell == "same" else _values(cell, len(keys))
    out.append(previous)
  return out


def test_the_readme_table_is_part_of_the_full_one():
  """Each field of the README's short table has a row in docs/configs.md, with the same
  defaults."""
  full = {tuple(keys): cells for keys, cells in _table_rows(CONFIGS_DOC)}
  rows = _table_rows()
  assert len(rows) > TABLES["README.md"][0]
  for keys, cells in rows:
    assert tuple(keys) in full, f"README's config.{keys[0]} has no row in {CONFIGS_DOC}"
    assert _resolved(keys, cells) == _resolved(keys, full[tuple(keys)]), keys


@pytest.mark.parametrize("doc", ["README.md"] + DOCS)  # docs/configs.md among them
def test_every_config_field_named_in_the_readme_exists(doc):
  fields = set()
  for name in configs.NAMES:
    fields |= set(workdir_config.flatten(configs.get_config(name)))
  sections = {f.rsplit(".", 1)[0] for f in fields if "." in f}
  # Examples of a mistyped flag and its error line name a field on purpose.
  text = "\n".join(line for line in _text(doc).splitlines()
                   if not line.startswith(("$ ", "kjax: error:")))
  named = set(re.findall(r"config\.([a-z_]+(?:\.[a-z_0-9]+)+)", text))
  unknown = sorted(n for n in named if n not in fields and n not in sections
                   and not n.startswith(("sweep.", "studies.")) and not n.endswith(".py"))
  assert not unknown, f"{doc} names config fields no config has: {unknown}"


def test_the_readme_cites_documents_by_title_not_file_number():
  assert not re.findall(r"\bseeds? 00[0-4]\b", _text())


@pytest.mark.parametrize("name", COLUMNS)
def test_the_quick_start_commands_use_existing_configs(name):
  assert f"--config={name}" in _text() or f"configs/{name}.py" in _text()


def _slugs(doc):
  """The anchors of ``doc``'s headings, by GitHub's rules: lower case, every character but
  letters, digits, ``_``, ``-`` and spaces dropped, spaces as ``-``, a repeated heading
  suffixed ``-1``, ``-2``, …; headings inside fenced code blocks are not headings."""
  text = re.sub(r"^```.*?^```", "", _text(doc), flags=re.M | re.S)
  slugs, seen = set(), {}
  for heading in re.findall(r"^#+ (.*)$", text, flags=re.M):
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    slugs.add(slug if n == 0 else f"{slug}-{n}")
  return slugs


def _broken_links(doc):
  """``doc``'s links that do not resolve: ``(#anchor)`` to one of its headings,
  ``(path)`` to a file or folder relative to ``doc``, ``(path.md#anchor)`` to a heading of
  that file. Web addresses are not followed."""
  text = re.sub(r"^```.*?^```", "", _text(doc), flags=re.M | re.S)
  broken = []
  for link in re.findall(r"\]\(([^)\s]+)\)", text):
    if re.match(r"[a-z]+:", link):
      continue
    path, _, anchor = link.partition("#")
    target = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
    if not os.path.exists(os.path.join(REPO, target)):
      broken.append(f"{link} (no file {target})")
    elif anchor and (not target.endswith(".md") or anchor not in _slugs(target)):
      broken.append(f"{link} (no heading #{anchor} in {target})")
  return broken


def test_every_link_inside_the_readme_has_its_heading():
  text = _text()
  targets = set(re.findall(r"\]\(#([^)]+)\)", text))
  assert targets and not targets - _slugs("README.md"), sorted(targets - _slugs("README.md"))
  # Links to the reference pages: the file exists, and so does the heading it names.
  files = re.findall(r"\]\(((?:docs|benchmarks|tests)/[^)]+)\)", text)
  assert any("#" in f for f in files) and len(files) > 10, files
  assert not _broken_links("README.md"), _broken_links("README.md")


@pytest.mark.parametrize("doc", DOCS)
def test_every_link_inside_the_docs_resolves(doc):
  assert not _broken_links(doc), _broken_links(doc)


@pytest.mark.parametrize("doc, most", [("README.md", 400), ("docs/architecture.md", 150)])
def test_the_guides_stay_short(doc, most):
  """The README is a user's guide (details live in docs/), the architecture a map."""
  lines = len(_text(doc).splitlines())
  assert lines <= most, f"{doc} has {lines} lines; at most {most} (move details to docs/)"
