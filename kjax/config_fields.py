"""The table of config fields: each field once, with its type, what is allowed, its meaning
and its roles.

The roles are read where they matter, and nowhere else is a field classified:

* ``resumable``: may change when a run is resumed, since it does not change the run's
  trajectory (``kjax.workdir.check_resumable``); the optimiser's fields (``optim.*``) may
  also change where a checkpoint recorded its config (``kjax.train.resume``).
* ``eval_input``: changes an evaluation's numbers, so it is recorded in
  ``eval/metrics.json``'s ``inputs`` (``kjax.evaluation.run.inputs``).
* ``final_eval_only``: read only by the evaluation after training, so runs of a sweep that
  differ in it still share one compiled program (``kjax.sweep.group_key``).
* ``stackable``: lives in arrays of the train state (a per-run hyper-parameter), never in
  the step's code, so a sweep may stack runs that differ in it in one program
  (``tests/test_tasks.py`` traces each family's step to check it).

The rows every run has are ``SHARED``; a model family adds its own, and may replace a shared
row with its own reading of the field (``kjax.tasks.Task.fields``; ``kjax.tasks.fields_of``
merges them). ``kjax.validation`` checks every field of a config against its row
(``check``), ``--help`` prints each field's meaning, and ``tests/test_config_fields.py``
fails when a shipped config has a field that no row describes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

from kjax import config_checks as checks
from kjax import errors
from kjax.data import catalog, loading, style

# Light on purpose (no JAX): ``--help`` reads this table. Values owned by JAX-side modules
# are imported when a check runs (``_conv_impls``, ``Field.check`` of ``steps``).

# Seeds a key tells apart: jax.random.key keeps a seed's low 32 bits (without x64), so seed
# s + NUM_SEEDS would silently be seed s. Seeds outside [0, NUM_SEEDS) are refused.
NUM_SEEDS = 2**32

KINDS = ("int", "real", "bool", "str", "choice", "ints", "steps", "any")


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field (``key`` dotted, e.g. ``'objective.beta'``; a key ending in ``'.*'``
  is every field of that section, e.g. a sweep's axes ``'sweep.*'``).

  Attributes:
    key: the dotted name.
    kind: one of ``KINDS``: ``int``/``real`` in ``[low, high]`` (``low_open``: ``> low``),
      ``bool``, ``str``, ``choice`` (one of ``choices``), ``ints`` (1 to 4 positive ints),
      ``steps`` (``'auto'`` or an int >= 1), ``any`` (checked elsewhere).
    meaning: one line for ``--help`` and the docs.
    low, high, low_open, high_open, choices: what is allowed (``choices`` may be a function returning
      the tuple, for tables that grow at run time).
    resumable, eval_input, final_eval_only, stackable: the roles (module docstring).
    none_ok: None is allowed too (an optional setting, e.g. a rate that defaults to another).
  """

  key: str
  kind: str
  meaning: str
  low: float | None = None
  high: float | None = None
  low_open: bool = False
  high_open: bool = False
  choices: tuple | Callable[[], tuple] | None = None
  resumable: bool = False
  eval_input: bool = True
  final_eval_only: bool = False
  stackable: bool = False
  none_ok: bool = False

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Field {self.key!r}: kind={self.kind!r} is not one of {KINDS}")

  def allowed(self) -> str:
    """What is allowed, in words (``--help``, docs); empty for ``any``."""
    if self.kind == "choice":
      return " | ".join(map(repr, self._choices()))
    if self.kind in ("int", "real"):
      fmt = (lambda v: f"{int(v)}") if self.kind == "int" else (lambda v: f"{v:g}")
      low = (f"{'>' if self.low_open else '>='} {fmt(self.low)}" if self.low is not None
             else "")
      high = (f"{'<' if self.high_open else '<='} {fmt(self.high)}" if self.high is not None
              else "")
      return f"{'an integer' if self.kind == 'int' else 'a number'} " + " and ".join(
          filter(None, [low, high]))
    return {"ints": "1 to 4 positive integers", "steps": "'auto' or an integer >= 1",
            "bool": "True or False", "str": "a string"}.get(self.kind, "")

  def _choices(self) -> tuple:
    return tuple(self.choices() if callable(self.choices) else self.choices)

  def check(self, config: Any, key: str | None = None) -> None:
    """Checks ``config.<key>`` (``key`` defaults to ``self.key``) against the row.

    Raises:
      ConfigError: ``config.<key>=<value> is not allowed: <what is>``.
    """
    key = key or self.key
    if self.none_ok and checks.value_of(config, key) is None:
      return
    if self.kind == "int":
      checks.integer(config, key, int(self.low or 0), None if self.high is None
                     else int(self.high))
    elif self.kind == "real":
      checks.real(config, key, self.low or 0.0, self.high, low_open=self.low_open,
                  high_open=self.high_open)
    elif self.kind == "bool":
      value = checks.value_of(config, key)
      checks.check(isinstance(value, bool), key, value, "expected True or False")
    elif self.kind == "str":
      value = checks.value_of(config, key)
      checks.check(isinstance(value, str), key, value, "expected a string")
    elif self.kind == "choice":
      checks.one_of(config, key, self._choices())
    elif self.kind == "ints":
      checks.positive_ints(config, key)
    elif self.kind == "steps":
      from kjax import autotune  # noqa: PLC0415  (JAX: only when checking)
      value = checks.value_of(config, key)
      try:
        autotune.steps_per_call(value, 1, "cpu")
      except errors.ConfigError:  # its message names the value; ours names the field
        checks.check(False, key, value, "expected 'auto' or an integer >= 1")


def _conv_impls() -> tuple[str, ...]:
  from kjax.models import conv  # noqa: PLC0415  (JAX: only when checking)
  return conv.IMPLS


def rows(*fields: Field) -> dict[str, Field]:
  """A table: ``{field.key: field}`` in the given order."""
  return {f.key: f for f in fields}


def logistic(key, kind, meaning, **kw) -> Field:
  """A field that changes neither the trajectory nor the evaluation's numbers."""
  return Field(key, kind, meaning, resumable=True, eval_input=False, **kw)


def _eval(key, kind, meaning, final=True, **kw) -> Field:
  """A field of the evaluation: resumable; changes the evaluation's numbers."""
  return Field(key, kind, meaning, resumable=True, final_eval_only=final, **kw)


SHARED: dict[str, Field] = rows(
    Field("seed", "int", "root of every PRNG stream", 0, NUM_SEEDS - 1, stackable=True),
    # data
    Field("data.name", "choice", "the data set (kjax.data.catalog)",
          choices=lambda: tuple(catalog.DATASETS)),
    Field("data.data_dir", "str", "folder of official files; empty = TFDS", resumable=True),
    Field("data.tfds_data_dir", "str", "TFDS's data folder; empty = TFDS's default",
          resumable=True),
    Field("data.cache_dir", "str", "where decoded splits are cached; empty = the default",
          resumable=True),
    Field("data.verify_checksums", "bool", "refuse files that are not the official ones",
          resumable=True),
    Field("data.train_split", "str", "training split, TFDS slicing syntax"),
    Field("data.eval_split", "str", "evaluation split, TFDS slicing syntax"),
    Field("data.style_pixel_threshold", "int", "grey level above which a pixel is ink "
          "(the thick/thin style label)", 0, 254),
    Field("data.style_reduction", "choice", "thick/thin threshold per class",
          choices=style.REDUCTIONS),
    Field("data.binarize", "choice", "binary images: dynamic = train batches drawn afresh "
          "each step, the eval split once; static = both once", choices=loading.BINARIZATIONS),
    # model
    Field("model.name", "any", "the model family (kjax.tasks.TASKS)"),
    Field("model.hidden", "int", "dense width", 1),
    Field("model.channels", "ints", "channels of the conv stages"),
    Field("model.conv_impl", "choice", "how convolutions are computed (the same function, "
          "another float32 round-off; auto: matmul on CPU, xla on GPU/TPU)", choices=_conv_impls,
          resumable=True),
    # optimiser
    Field("optim.learning_rate", "real", "Adam's learning rate", 0, low_open=True,
          stackable=True),
    # training
    Field("train.batch_size", "int", "examples per train step", 1),
    logistic("train.num_epochs", "int", "epochs of training", low=1),
    logistic("train.log_every_steps", "int", "steps between metric points", low=1),
    logistic("train.checkpoint_every_steps", "int", "steps between checkpoints", low=1),
    logistic("train.keep_checkpoints", "int", "checkpoints kept", low=1),
    logistic("train.steps_per_call", "steps", "train steps per compiled call"),
    Field("train.eval_batch_size", "int", "examples per evaluation call", 1, resumable=True),
    # evaluation
    _eval("eval.at_end_of_training", "bool", "evaluate when training ends"),
    _eval("eval.classifier_workdir", "str", "the domain evaluator: empty = the shipped one; "
          "a classifier run's workdir; 'none' = skip those metrics"),
    _eval("eval.iwae_samples", "int", "k of the IWAE bound on -log p(x)", low=1),
    _eval("eval.iwae_max_examples", "int", "eval images in the IWAE estimate; 0 = all", low=0),
    _eval("eval.iwae_chunk_size", "int", "importance samples per decoder call", low=1,
          final=False),
    _eval("eval.iwae_batch_size", "int", "images per decoder call of the IWAE bound", low=1),
    _eval("eval.epoch_iwae_samples", "int", "k of an IWAE bound in every epoch's "
          "evaluation; 0 = none", low=0, final=False),
    _eval("eval.num_generated", "int", "samples for FD, KID, class and style metrics; 0 = "
          "the eval split's size (1 is not allowed)", low=0),
    _eval("eval.kid_subsets", "int", "KID's random subsets", low=1),
    _eval("eval.kid_subset_size", "int", "size of each KID subset", low=2),
    _eval("eval.tsne_max_points", "int", "points of the t-SNE figure", low=5),
    _eval("eval.prdc_k", "int", "k of the k-NN balls of precision/recall/density/coverage",
          low=1, high=100),
    _eval("eval.sampler", "choice", "latents of the sample metrics of a family with an "
          "encoder: prior N(0, I), or gmm, a Gaussian mixture fitted to the train split's "
          "z_mean (Ghosh et al. 2020), with the prior's metrics beside it",
          choices=("prior", "gmm")),
    _eval("eval.gmm_components", "int", "components of the gmm sampler's mixture (per class "
          "for a conditional model)", low=1),
    _eval("eval.cas_epochs", "int", "epochs of the CAS classifier trained on samples; "
          "0 = no CAS", low=0, high=1000),
    # devices, figures, sweeps
    logistic("mesh.runs", "int", "devices along a sweep group's runs; 0 = automatic", low=0),
    logistic("mesh.data", "int", "devices along each batch; 0 = automatic", low=0),
    # Every generator's interpolation figure (a family's own figures: its Task.fields).
    logistic("figures.interpolate_classes", "any", "the two classes of the interpolation "
              "figure"),
    logistic("sweep.max_runs", "int", "refuse a grid of more runs", low=1),
    logistic("sweep.sharing", "any", "how a group's runs share a program: auto | vmap | "
              "map | sequential"),
    logistic("sweep.shard", "any", "'I/N': this launch trains every N-th group from I"),
    logistic("sweep.executor", "any", "local | ray"),
    logistic("sweep.parts", "int", "training of each group in N parts", low=1),
    logistic("sweep.*", "any", "an axis of the grid: a tuple of values of the run field of "
              "that name"),
)


# A benchmark's own fields (``configs/benchmark.py``, ``kjax.benchmark``); its ``data`` rows
# are ``SHARED``'s and each study is a run config checked against its family's table.
BENCHMARK: dict[str, Field] = rows(
    Field("seeds", "any", "the seeds of every study: a non-empty tuple of integers >= 0"),
    logistic("max_epochs", "int", "caps each study's train.num_epochs; 0 = each study's "
              "own", low=0),
    Field("studies.*", "any", "name: a model config with a sweep section"),
)


def lookup(table: dict[str, Field], key: str) -> Field | None:
  """The row of ``key`` in ``table`` (a section's ``'.*'`` row for a key it has none of),
  or None."""
  if key in table:
    return table[key]
  section = key.rsplit(".", 1)[0] if "." in key else ""
  return table.get(f"{section}.*")


def merged(*tables: dict[str, Field]) -> dict[str, Field]:
  """The rows of ``tables``, a later table's row replacing an earlier one of the same key."""
  out: dict[str, Field] = {}
  for table in tables:
    out.update(table)
  return out


def keys_with(table: dict[str, Field], keys: Iterable[str], role: str) -> list[str]:
  """The ``keys`` whose row has ``role`` (``'resumable'``, ``'eval_input'``, ...); a key with
  no row has none of the roles but ``eval_input`` (the safe reading of an unknown field)."""
  out = []
  for key in keys:
    row = lookup(table, key)
    if getattr(row, role) if row is not None else role == "eval_input":
      out.append(key)
  return out


ROLE_NAMES = {"resumable": "resumable", "eval_input": "eval input",
              "final_eval_only": "final eval only", "stackable": "stackable"}


def markdown(families: dict[str, dict[str, Field]]) -> str:
  """The table of config fields as Markdown (``docs/configs.md``): one line per row, a key
  that families read differently once per reading, with the families that have it.

  Args:
    families: family name → its table (``kjax.tasks.fields_of``).
  """
  readings: dict[tuple[str, Field], list[str]] = {}
  for family, table in families.items():
    for key, row in table.items():
      readings.setdefault((key, row), []).append(family)
  lines = ["| field | allowed | meaning | roles | families |", "|---|---|---|---|---|"]
  everyone = list(families)
  for (key, row), names in sorted(readings.items(), key=lambda item: item[0][0]):
    roles = ", ".join(v for k, v in ROLE_NAMES.items() if getattr(row, k))
    allowed = row.allowed() + (" or None" if row.none_ok else "")
    lines.append(f"| `{key}` | {allowed.replace('|', '&#124;')} | "
                 f"{row.meaning.replace('|', '&#124;')} | {roles} | "
                 f"{'all' if names == everyone else ', '.join(names)} |")
  return "\n".join(lines) + "\n"


def check_all(table: dict[str, Field], config: Any, flat: dict[str, Any]) -> None:
  """Checks every field of ``config`` (``flat``: its dotted keys) that ``table`` has a row
  for, in the table's order.

  Raises:
    ConfigError: the first bad value.
  """
  for key, row in table.items():
    if key.endswith(".*"):
      continue
    if key in flat:
      row.check(config)
