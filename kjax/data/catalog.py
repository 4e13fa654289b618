"""The data sets kjax knows: their official files, checksums, sizes and class names.

Checksums are the official release's: the SHA-256 that TensorFlow Datasets registers for
each URL (``tensorflow_datasets/url_checksums/{kmnist,mnist}.txt``). The KMNIST ``.npz``
variants have no published checksum; for them kjax checks a SHA-256 of the decoded array
(``content_sha256``), known for the splits whose official idx files could be decoded.
"""

from __future__ import annotations

import dataclasses
from numbers import Integral

from kjax import errors

_KMNIST_URL = "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"
_MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"


@dataclasses.dataclass(frozen=True)
class FileSpec:
  """One official file.

  Attributes:
    filename: the file's official name, e.g. ``t10k-images-idx3-ubyte.gz``.
    url: where the official release serves it.
    sha256: hex SHA-256 of the file's bytes, or None where none is published.
    md5: hex MD5 of the file's bytes, for files whose publisher gives only MD5 (K49).
    content_sha256: hex SHA-256 of the decoded uint8 array's bytes (C order), used for
      formats without a published file checksum; None where unknown.
  """

  filename: str
  url: str
  sha256: str | None = None
  md5: str | None = None
  content_sha256: str | None = None

  @property
  def has_file_checksum(self) -> bool:
    """Whether the file itself (not only its decoded array) has a published checksum."""
    return self.sha256 is not None or self.md5 is not None


@dataclasses.dataclass(frozen=True)
class SplitFiles:
  """The image and label files of one split in one on-disk format."""

  images: FileSpec
  labels: FileSpec


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What kjax knows of a data set.

  Attributes:
    name: the ``config.data.name`` value (``kmnist`` | ``k49`` | ``mnist``).
    num_classes: number of classes.
    class_names: the character (or digit) of each class, index = label.
    class_romaji: a Latin transliteration of each class name (for fonts without kana).
    split_sizes: number of examples of each official split.
    files: for each split, the accepted formats in order of preference.
    homepage: where to get the files.
    image_shape: ``(H, W, C)`` of one image, ``(28, 28, 1)`` for KMNIST, K49 and MNIST. The
      loaders check every file against it, the tasks build their networks for it, and
      the figures tile images of it.
  """

  name: str
  num_classes: int
  class_names: tuple[str, ...]
  class_romaji: tuple[str, ...]
  split_sizes: dict[str, int]
  files: dict[str, tuple[SplitFiles, ...]]
  homepage: str
  image_shape: tuple[int, int, int] = (28, 28, 1)

  @property
  def shape_text(self) -> str:
    """The image shape as people write it: ``'28×28'`` (grey), ``'32×32×3'`` otherwise."""
    h, w, c = self.image_shape
    return f"{h}×{w}" if c == 1 else f"{h}×{w}×{c}"

  def label(self, k: int) -> str:
    """Human-readable label of class ``k``, e.g. ``'1 き (ki)'`` or ``'7'``."""
    name, romaji = self.class_names[k], self.class_romaji[k]
    return f"{k} {name}" if name == romaji else f"{k} {name} ({romaji})"


def idx_files(base: str, split: str, sha_img: str | None = None, sha_lbl: str | None = None,
              content_img: str | None = None, content_lbl: str | None = None) -> SplitFiles:
  """The MNIST-format files of ``split`` (``train`` → ``train-images-idx3-ubyte.gz`` and
  ``train-labels-idx1-ubyte.gz``; ``test`` → ``t10k-*``), served under the URL ``base``,
  with their checksums where known (None: not verified)."""
  prefix = "t10k" if split == "test" else "train"
  return SplitFiles(
      images=FileSpec(f"{prefix}-images-idx3-ubyte.gz", base + f"{prefix}-images-idx3-ubyte.gz",
                      sha256=sha_img, content_sha256=content_img),
      labels=FileSpec(f"{prefix}-labels-idx1-ubyte.gz", base + f"{prefix}-labels-idx1-ubyte.gz",
                      sha256=sha_lbl, content_sha256=content_lbl))


def npz_files(base: str, stem: str, split: str, content_img: str | None = None,
              content_lbl: str | None = None) -> SplitFiles:
  """The KMNIST-format ``.npz`` files of ``split`` (``<stem>-<split>-imgs.npz`` and
  ``<stem>-<split>-labels.npz``, the array under ``arr_0``), served under the URL ``base``."""
  return SplitFiles(
      images=FileSpec(f"{stem}-{split}-imgs.npz", base + f"{stem}-{split}-imgs.npz",
                      content_sha256=content_img),
      labels=FileSpec(f"{stem}-{split}-labels.npz", base + f"{stem}-{split}-labels.npz",
                      content_sha256=content_lbl))


# SHA-256 of the decoded KMNIST test arrays (uint8 [10000, 28, 28] and uint8 [10000]),
# computed from the checksum-verified official idx files.
_KMNIST_TEST_IMAGES_CONTENT = "dc10e73c6e83fb3fb3586eafece217ab6602e7825fa7d49399359bde3fc66f07"
_KMNIST_TEST_LABELS_CONTENT = "77d83a49ca5434c5da77399edc7143065cb3a7b0834e2898ea3094e8c2b21a3c"

KMNIST = DatasetInfo(
    name="kmnist",
    num_classes=10,
    class_names=("お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を"),
    class_romaji=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    split_sizes={"train": 60_000, "test": 10_000},
    files={
        "train": (
            idx_files(_KMNIST_URL, "train",
                 "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
                 "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"),
            npz_files(_KMNIST_URL, "kmnist", "train"),
        ),
        "test": (
            idx_files(_KMNIST_URL, "test",
                 "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
                 "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
                 _KMNIST_TEST_IMAGES_CONTENT, _KMNIST_TEST_LABELS_CONTENT),
            npz_files(_KMNIST_URL, "kmnist", "test",
                 _KMNIST_TEST_IMAGES_CONTENT, _KMNIST_TEST_LABELS_CONTENT),
        ),
    },
    homepage="http://codh.rois.ac.jp/kmnist/",
)

MNIST = DatasetInfo(
    name="mnist",
    num_classes=10,
    class_names=tuple(str(k) for k in range(10)),
    class_romaji=tuple(str(k) for k in range(10)),
    split_sizes={"train": 60_000, "test": 10_000},
    files={
        "train": (idx_files(_MNIST_URL, "train",
                       "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                       "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),),
        "test": (idx_files(_MNIST_URL, "test",
                      "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                      "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),),
    },
    homepage="http://yann.lecun.com/exdb/mnist/",
)

_K49_URL = "http://codh.rois.ac.jp/kmnist/dataset/k49/"


def _k49(split, md5_img, md5_lbl):
  return SplitFiles(
      images=FileSpec(f"k49-{split}-imgs.npz", _K49_URL + f"k49-{split}-imgs.npz", md5=md5_img),
      labels=FileSpec(f"k49-{split}-labels.npz", _K49_URL + f"k49-{split}-labels.npz",
                      md5=md5_lbl))


# Kuzushiji-49: 48 hiragana and the iteration mark ゝ, in the order of the official
# k49_classmap.csv (the gojūon order; KMNIST's 10 classes are one from each of its rows).
K49 = DatasetInfo(
    name="k49",
    num_classes=49,
    class_names=tuple("あいうえおかきくけこさしすせそたちつてとなにぬねの"
                      "はひふへほまみむめもやゆよらりるれろわゐゑをんゝ"),
    class_romaji=("a", "i", "u", "e", "o", "ka", "ki", "ku", "ke", "ko", "sa", "shi", "su",
                  "se", "so", "ta", "chi", "tsu", "te", "to", "na", "ni", "nu", "ne", "no",
                  "ha", "hi", "fu", "he", "ho", "ma", "mi", "mu", "me", "mo", "ya", "yu", "yo",
                  "ra", "ri", "ru", "re", "ro", "wa", "wi", "we", "wo", "n", "iteration"),
    split_sizes={"train": 232_365, "test": 38_547},
    files={
        "train": (_k49("train", "7ac088b20481cf51dcd01ceaab89d821",
                       "44a8e1b893f81e63ff38d73cad420f7a"),),
        "test": (_k49("test", "d352e201d846ce6b94f42c990966f374",
                      "4da6f7a62e67a832d5eb1bd85c5ee448"),),
    },
    homepage="http://codh.rois.ac.jp/kmnist/",
)

BUILTIN = ("kmnist", "k49", "mnist")
DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (KMNIST, K49, MNIST)}


def _check_info(info: DatasetInfo) -> None:
  """Raises a one-line ConfigError where ``info`` cannot describe a data set kjax loads."""
  def fail(what: str):
    raise errors.ConfigError(f"data set {info.name!r}: {what}")

  if not isinstance(info.name, str) or not info.name:
    raise errors.ConfigError(f"data set name {info.name!r} is not allowed: expected a "
                             "non-empty string")
  shape = tuple(info.image_shape)
  if len(shape) != 3 or not all(isinstance(d, Integral) and d >= 1 for d in shape):
    fail(f"image_shape={info.image_shape!r} is not allowed: expected (H, W, C), three "
         "positive integers")
  if shape[2] != 1:
    fail(f"image_shape={info.image_shape!r} has {shape[2]} channels: kjax's loaders, style "
         "labels and figures take grey images only (C = 1)")
  if not (info.num_classes >= 1 and len(info.class_names) == len(info.class_romaji)
          == info.num_classes):
    fail(f"{len(info.class_names)} class_names and {len(info.class_romaji)} class_romaji for "
         f"num_classes={info.num_classes} (expected one of each per class)")
  if set(info.files) != set(info.split_sizes) or not info.files:
    fail(f"files has splits {sorted(info.files)} and split_sizes {sorted(info.split_sizes)} "
         "(expected the same official splits in both)")


def register(info: DatasetInfo) -> DatasetInfo:
  """Adds a data set to the catalogue, so that ``config.data.name=info.name`` loads it
  from the official-format files (idx ``.gz`` or ``.npz``, ``idx_files`` / ``npz_files``)
  in ``config.data.data_dir``; files without a checksum need
  ``config.data.verify_checksums=False``. The registration lasts for the process
  (subprocesses, e.g. a multi-process launch, must register it too).

  Args:
    info: the entry; its ``image_shape`` (H, W, 1) may differ from 28 × 28.

  Returns:
    ``info``, with ``image_shape`` as a tuple of ints.

  Raises:
    ConfigError: the name is already used, or the entry is inconsistent (e.g. not grey
      images, or fewer class names than classes); one line.
  """
  if info.name in DATASETS:
    raise errors.ConfigError(f"data set name {info.name!r} is already registered; expected a "
                             f"new name (not one of: {', '.join(sorted(DATASETS))})")
  _check_info(info)
  info = dataclasses.replace(info, image_shape=tuple(int(d) for d in info.image_shape))
  DATASETS[info.name] = info
  return info


def unregister(name: str) -> None:
  """Removes a data set added by ``register`` (a test's clean-up).

  Raises:
    ConfigError: ``name`` is one of kjax's own data sets, or not registered.
  """
  if name in BUILTIN or name not in DATASETS:
    added = ", ".join(sorted(set(DATASETS) - set(BUILTIN))) or "none"
    raise errors.ConfigError(f"data set {name!r} cannot be unregistered: expected a name "
                             f"given to register ({added})")
  del DATASETS[name]


def get_dataset_info(name: str) -> DatasetInfo:
  """Returns the catalogue entry of data set ``name``.

  Raises:
    ConfigError: ``name`` is not a data set kjax knows.
  """
  try:
    return DATASETS[name]
  except KeyError:
    raise errors.ConfigError(f"config.data.name={name!r} is not a known data set; "
                     f"expected one of: {', '.join(sorted(DATASETS))}") from None
