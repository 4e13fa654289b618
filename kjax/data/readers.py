"""Readers for the official file formats, and checksum verification.

Formats: MNIST idx (``*-idx3-ubyte`` images, ``*-idx1-ubyte`` labels; gzipped or not;
http://yann.lecun.com/exdb/mnist/ "FILE FORMATS") and NumPy ``.npz`` with the array under
key ``arr_0`` (the KMNIST/Kuzushiji-49 release format).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct

import numpy as np

from kjax.data import catalog

# idx type codes (third byte of the magic number) -> numpy dtype.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


from kjax.errors import ChecksumError, DataError, DataFileNotFoundError  # noqa: F401


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an MNIST idx file (optionally gzipped).

  Args:
    path: an ``*-idx?-ubyte`` file; names ending ``.gz`` are decompressed.

  Returns:
    The array with the shape the header gives, e.g. uint8 ``[N, 28, 28]`` for images and
    uint8 ``[N]`` for labels.

  Raises:
    DataError: the header is not an idx header or the payload has the wrong size.
  """
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "rb") as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise DataError(f"{path}: not an idx file (magic bytes {raw[:4].hex()!r})")
  ndim = raw[3]
  shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
  dtype = np.dtype(_IDX_DTYPES[raw[2]])
  payload = raw[4 + 4 * ndim:]
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(payload) != expected:
    raise DataError(f"{path}: idx header gives shape {shape} ({expected} bytes) "
                     f"but the payload has {len(payload)} bytes")
  return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_npz(path: str | os.PathLike, key: str = "arr_0") -> np.ndarray:
  """Reads the array stored under ``key`` in an ``.npz`` file.

  Raises:
    DataError: the archive has no array named ``key``.
  """
  with np.load(path, allow_pickle=False) as archive:
    if key not in archive.files:
      raise DataError(f"{path}: no array {key!r} in the archive (it has {archive.files})")
    return np.asarray(archive[key])


def read_array(path: str | os.PathLike) -> np.ndarray:
  """Reads an idx or npz file, choosing the reader by the file name."""
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
  """
  if spec.sha256 is not None:
    actual, expected, what = file_sha256(path), spec.sha256, "SHA-256"
  elif spec.md5 is not None:
    actual, expected, what = file_digest(path, "md5"), spec.md5, "MD5"
  elif spec.content_sha256 is not None and array is not None:
    actual, expected, what = array_sha256(array), spec.content_sha256, "SHA-256 of the decoded array"
  else:
    return False
  if actual != expected:
    raise ChecksumError(
        f"{path}: {what} is {actual}, but the official {spec.filename} has {expected}; "
        f"re-download it from {spec.url} (or set config.data.verify_checksums=False "
        "to accept a non-official file)")
  return True
