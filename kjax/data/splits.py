"""Split selection in TensorFlow Datasets' slicing syntax (``test[:8000]``, ``train[:90%]``).

The syntax is TFDS's own (https://www.tensorflow.org/datasets/splits): kjax parses it with
``tfds.core.ReadInstruction`` so that the local-folder source and the TFDS source select
exactly the same examples.
"""

from __future__ import annotations

import dataclasses

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
