"""Split selection in TensorFlow Datasets' slicing syntax (``test[:8000]``, ``train[:90%]``).

The syntax is TFDS's own (https://www.tensorflow.org/datasets/splits): kjax parses it with
``tfds.core.ReadInstruction`` so that the local-folder source and the TFDS source select
exactly the same examples.
"""

from __future__ import annotations

import dataclasses

from absl import logging
import tensorflow_datasets as tfds

from kjax import errors


@dataclasses.dataclass(frozen=True)
class _SplitInfo:
  num_examples: int


def resolve_split(spec: str, split_sizes: dict[str, int]) -> list[tuple[str, int, int]]:
  """Turns a TFDS split spec into absolute ``(split, start, stop)`` ranges.

  Args:
    spec: e.g. ``'test'``, ``'test[:8000]'``, ``'train[:90%]+test[:10]'``.
    split_sizes: number of examples of each official split.

  Returns:
    One ``(split_name, start, stop)`` per ``+``-joined part, with ``0 <= start < stop``.

  Raises:
    DataError: the spec does not parse, names an unknown split, is out of range, or
      selects no example. The message names the spec and the split's size.
  """
  sizes_text = ", ".join(f"{k} has {v} examples" for k, v in split_sizes.items())
  try:
    instructions = tfds.core.ReadInstruction.from_spec(spec).to_absolute(
        {name: _SplitInfo(n) for name, n in split_sizes.items()})
  except (ValueError, AssertionError, KeyError) as e:
    reason = str(e).splitlines()[0]
    raise errors.DataError(f"split {spec!r} is not valid ({reason}); {sizes_text}") from None
  ranges = []
  for instruction in instructions:
    size = split_sizes[instruction.splitname]
    start = 0 if instruction.from_ is None else instruction.from_
    stop = size if instruction.to is None else instruction.to
    if stop <= start:
      raise errors.DataError(f"split {spec!r} selects no examples of {instruction.splitname!r} "
                       f"(which has {size} examples)")
    ranges.append((instruction.splitname, start, stop))
  return ranges


def split_names(spec: str, known: list[str] | tuple[str, ...]) -> list[str]:
  """The official splits a spec reads, e.g. ``'train[:10]+test'`` → ``['test', 'train']``.

  Raises:
    DataError: the spec does not parse or names an unknown split.
  """
  unbounded = dict.fromkeys(known, 2**62)  # sizes do not matter for the names
  return sorted({name for name, _, _ in resolve_split(spec, unbounded)})


def shared_examples(spec_a: str, spec_b: str, split_sizes: dict[str, int]) -> int:
  """How many examples two split specs both select, by their index ranges (e.g.
  ``'test'`` and ``'test[:8000]'`` share 8,000; ``'test[:8000]'`` and ``'test[8000:]'``
  none). Issue 28: no stated protocol scores images the run or its evaluator trained on.

  Raises:
    DataError: a spec does not parse or is out of range (``resolve_split``).
  """
  ranges_b = resolve_split(spec_b, split_sizes)
  return sum(max(0, min(stop_a, stop_b) - max(start_a, start_b))
             for name_a, start_a, stop_a in resolve_split(spec_a, split_sizes)
             for name_b, start_b, stop_b in ranges_b if name_a == name_b)


def eval_images_seen(data_name: str, eval_split: str, split_sizes: dict[str, int],
                     train_split: str, evaluator: tuple[str, str] | None = None
                     ) -> dict[str, int]:
  """How many images of ``eval_split`` the run trained on (``'run'``: shared with
  ``train_split``) and, given ``evaluator = (its data set, its train split)`` on the same
  data set, the domain evaluator trained on (``'evaluator'``); by index ranges of the
  official splits (``shared_examples``). Empty where the specs do not resolve against
  ``split_sizes`` (non-official files of other sizes)."""
  try:
    out = {"run": shared_examples(eval_split, train_split, split_sizes)}
    if evaluator is not None and evaluator[0] == data_name:
      out["evaluator"] = shared_examples(eval_split, evaluator[1], split_sizes)
  except errors.DataError:
    return {}
  return out


def warn_if_seen(seen: dict[str, int], eval_split: str, train_split: str,
                 evaluator_split: str | None = None) -> None:
  """One warning line for each nonzero count of ``eval_images_seen``, naming the splits."""
  if seen.get("run"):
    logging.warning("kjax: the eval split %r shares %d images with the train split %r: its "
                    "metrics are not held out", eval_split, seen["run"], train_split)
  if seen.get("evaluator"):
    logging.warning("kjax: the domain evaluator was trained on %r, which holds %d images of "
                    "the eval split %r: its classifier-based metrics (FD, KID, class "
                    "accuracy, ...) score images it trained on", evaluator_split,
                    seen["evaluator"], eval_split)
