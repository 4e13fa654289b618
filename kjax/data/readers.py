"""Readers for the official file formats, and checksum verification.

Formats: MNIST idx (``*-idx3-ubyte`` images, ``*-idx1-ubyte`` labels; gzipped or not;
http://yann.lecun.com/exdb/mnist/ "FILE FORMATS") and NumPy ``.npz`` with the array under
key ``arr_0`` (the KMNIST/Kuzushiji-49 release format).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zipfile
import zlib

import numpy as np

from kjax.data import catalog

# idx type codes (third byte of the magic number) -> numpy dtype.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


from kjax.errors import ChecksumError, DataError, DataFileNotFoundError  # noqa: F401


_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member first; an empty archive
_NPY_MAGIC = b"\x93NUMPY"


def _why(error: BaseException) -> str:
  """``error`` as ``'Type: message'`` on one line (library messages may span several)."""
  name = type(error).__name__
  if name == "error":  # zlib.error, struct.error
    name = f"{type(error).__module__}.error"
  text = " ".join(str(error).split())
  return f"{name}: {text}" if text else name


def _read_bytes(path: str | os.PathLike, size: int | None = None) -> bytes:
  """The first ``size`` (default: all) bytes of a file.

  Raises:
    DataError: the file cannot be read (permissions, I/O error).
  """
  try:
    with open(path, "rb") as f:
      return f.read() if size is None else f.read(size)
  except OSError as e:
    raise DataError(f"{path}: cannot be read ({e.strerror or _why(e)})") from e


def _check_not_empty(path: str | os.PathLike, expected: str) -> None:
  try:
    size = os.path.getsize(path)
  except OSError as e:
    raise DataError(f"{path}: cannot be read ({e.strerror or _why(e)})") from e
  if size == 0:
    raise DataError(f"{path}: the file is empty (0 bytes; expected {expected})")


def _gunzip(path: str | os.PathLike) -> bytes:
  """The decompressed content of a gzip file.

  Raises:
    DataError: not a gzip file, truncated, or corrupt (bad CRC or deflate data).
  """
  head = _read_bytes(path, 4)
  if head[:2] != _GZIP_MAGIC:
    idx = len(head) == 4 and head[:2] == b"\0\0" and head[2] in _IDX_DTYPES
    raise DataError(f"{path}: not a gzip file (it starts with bytes {head.hex()!r}"
                    f"{', an uncompressed idx header' if idx else ''}; expected gzip's "
                    f"{_GZIP_MAGIC.hex()!r})")
  try:
    with gzip.open(path, "rb") as f:
      return f.read()
  except EOFError as e:
    raise DataError(f"{path}: truncated gzip file (the compressed data ends before the "
                    f"end-of-stream marker; expected a complete gzip stream)") from e
  except gzip.BadGzipFile as e:
    raise DataError(f"{path}: corrupt gzip file ({_why(e)})") from e
  except zlib.error as e:
    raise DataError(f"{path}: corrupt gzip file (the compressed data cannot be "
                    f"decompressed: {_why(e)})") from e
  except OSError as e:
    raise DataError(f"{path}: cannot be read ({e.strerror or _why(e)})") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an MNIST idx file (optionally gzipped).

  The header's shape is checked against the payload's size (exact integers) before any
  array is made, so a corrupt header cannot ask for more memory than the file holds.

  Args:
    path: an ``*-idx?-ubyte`` file; names ending ``.gz`` are decompressed.

  Returns:
    The array with the shape the header gives, e.g. uint8 ``[N, H, W]`` (``[N, 28, 28]``
    for KMNIST) for images and
    uint8 ``[N]`` for labels.

  Raises:
    DataError: the file is empty or cannot be read; a ``.gz`` name that is not a gzip file,
      or a truncated or corrupt one; the header is not an idx header (magic bytes, unknown
      type code, more dimensions than the file has bytes for); or the payload's size is
      not the one the header's shape gives. The message is one line naming the file.
  """
  _check_not_empty(path, "an idx file")
  raw = _gunzip(path) if str(path).endswith(".gz") else _read_bytes(path)
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
    raise DataError(f"{path}: not an idx file (magic bytes {raw[:4].hex()!r}; expected "
                    "'0000' then a type code and the number of dimensions)")
  if raw[2] not in _IDX_DTYPES:
    codes = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
    raise DataError(f"{path}: unknown idx data type code 0x{raw[2]:02x} (expected one of "
                    f"{codes})")
  ndim = raw[3]
  header_size = 4 + 4 * ndim
  if len(raw) < header_size:
    raise DataError(f"{path}: idx header gives {ndim} dimensions, which need a "
                    f"{header_size}-byte header, but the file holds {len(raw)} bytes "
                    "(truncated or not an idx file)")
  shape = struct.unpack(f">{ndim}I", raw[4:header_size])
  dtype = np.dtype(_IDX_DTYPES[raw[2]])
  payload_size = len(raw) - header_size
  expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
  if payload_size != expected:
    shown = list(shape) if ndim <= 4 else f"[{', '.join(map(str, shape[:4]))}, ...]"
    raise DataError(f"{path}: the idx payload has {payload_size} bytes, but the header's "
                    f"shape {shown} ({ndim} dimensions) of {dtype.name} needs {expected} bytes "
                    f"({'truncated' if payload_size < expected else 'corrupt'} file or "
                    "header)")
  payload = memoryview(raw)[header_size:]
  return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_npz(path: str | os.PathLike, key: str = "arr_0") -> np.ndarray:
  """Reads the array stored under ``key`` in an ``.npz`` file.

  Pickled Python objects are never loaded (``allow_pickle=False``): a file holding them
  is refused.

  Raises:
    DataError: the file is empty or cannot be read; it is not a zip archive (a ``.npy``
      file, a pickle, other bytes); the archive is truncated or corrupt (bad CRC or
      compressed data); it has no array named ``key``; or the array holds pickled Python
      objects. The message is one line naming the file.
  """
  _check_not_empty(path, "an npz archive")
  head = _read_bytes(path, len(_NPY_MAGIC))
  if not head.startswith(_ZIP_MAGICS):
    if head.startswith(_NPY_MAGIC):
      what = "it is a .npy file: save it with numpy.savez"
    elif head[:1] == b"\x80":
      what = "it holds pickled Python objects, which kjax never loads"
    else:
      what = f"it starts with bytes {head[:4].hex()!r}"
    raise DataError(f"{path}: not an npz (zip) archive ({what}; expected an archive "
                    f"written by numpy.savez with the array under {key!r})")
  try:
    with np.load(path, allow_pickle=False) as archive:
      if key not in archive.files:
        raise DataError(f"{path}: no array {key!r} in the archive (it has {archive.files})")
      return np.asarray(archive[key])
  except ValueError as e:
    if isinstance(e, DataError):
      raise
    if "pickle" in str(e):
      raise DataError(f"{path}: holds pickled Python objects under {key!r}, which kjax "
                      "never loads (expected a numeric array saved without "
                      "allow_pickle)") from e
    raise DataError(f"{path}: corrupt npz archive ({_why(e)})") from e
  except zipfile.BadZipFile as e:
    what = "truncated or corrupt" if "not a zip file" in str(e) else "corrupt"
    raise DataError(f"{path}: {what} npz archive ({_why(e)})") from e
  except (EOFError, zlib.error, struct.error) as e:
    raise DataError(f"{path}: truncated or corrupt npz archive ({_why(e)})") from e
  except OSError as e:
    raise DataError(f"{path}: cannot be read ({e.strerror or _why(e)})") from e


def read_array(path: str | os.PathLike) -> np.ndarray:
  """Reads an idx or npz file, choosing the reader by the file name.

  Raises:
    DataError: see ``read_idx`` and ``read_npz``.
  """
  return read_npz(path) if str(path).endswith(".npz") else read_idx(path)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
  """Hex digest (``'sha256'`` or ``'md5'``) of a file's bytes, read in 1 MiB chunks."""
  digest = hashlib.new(algorithm)
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
  """Hex SHA-256 of a file's bytes."""
  return file_digest(path, "sha256")


def array_sha256(array: np.ndarray) -> str:
  """Hex SHA-256 of an array's bytes in C order (the ``content_sha256`` of the catalogue)."""
  return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def verify_file(path: str | os.PathLike, spec: catalog.FileSpec,
                array: np.ndarray | None = None) -> bool:
  """Checks a file against its official checksum.

  The file checksum (``spec.sha256``, else ``spec.md5``) is used where published; otherwise
  the checksum of the decoded array (``spec.content_sha256``, which then needs ``array``).

  Returns:
    True if a checksum was known and matched; False if none is known for this file.

  Raises:
    ChecksumError: the checksum differs; the message names the file and both checksums.
    DataError: the file cannot be read.
  """
  if spec.has_file_checksum:
    if spec.sha256 is not None:
      algorithm, expected, what = "sha256", spec.sha256, "SHA-256"
    else:
      algorithm, expected, what = "md5", spec.md5, "MD5"
    try:
      actual = file_digest(path, algorithm)
    except OSError as e:
      raise DataError(f"{path}: cannot be read ({e.strerror or _why(e)})") from e
  elif spec.content_sha256 is not None and array is not None:
    actual, expected = array_sha256(array), spec.content_sha256
    what = "SHA-256 of the decoded array"
  else:
    return False
  if actual != expected:
    raise ChecksumError(
        f"{path}: {what} is {actual}, but the official {spec.filename} has {expected}; "
        f"re-download it from {spec.url} (or set config.data.verify_checksums=False "
        "to accept a non-official file)")
  return True
