"""Bad data files: each gives one line (``DataError``, or ``ChecksumError`` where the file's
checksum is known and verified) naming the file and what is wrong, never a traceback.

Each bad file is tiny and synthetic; its partner (the other file of the split) is the real
official KMNIST test file, so that with verification on the error is the bad file's own.
"""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from kjax import errors
from kjax.data import catalog, local, readers

IDX = catalog.KMNIST.files["test"][0]  # t10k-*-idx?-ubyte.gz, file SHA-256 known
NPZ = catalog.KMNIST.files["test"][1]  # kmnist-test-*.npz, only the decoded arrays' SHA-256
_RNG = np.random.default_rng(0)
_IMAGES = _RNG.integers(0, 256, (10, 28, 28), dtype=np.uint8)
_LABELS = _RNG.integers(0, 10, (10,), dtype=np.uint8)


def _idx_bytes(array, code=0x08):
  header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  return header + np.ascontiguousarray(array).astype(array.dtype.newbyteorder(">")).tobytes()


def _gz(raw):
  return gzip.compress(raw, mtime=0)


def _flip(raw, index):
  raw = bytearray(raw)
  raw[index] ^= 0xFF
  return bytes(raw)


def _npz_bytes(tmp_path, *args, **kwargs):
  path = tmp_path / "scratch.npz"
  np.savez(path, *args, **kwargs)
  raw = path.read_bytes()
  path.unlink()
  return raw


def _npy_bytes(tmp_path, array):
  path = tmp_path / "scratch.npy"
  np.save(path, array)
  raw = path.read_bytes()
  path.unlink()
  return raw


# name -> (format, 'images' | 'labels', bytes maker (tmp_path -> bytes), what the message says,
#          whether the file cannot be decoded at all: then the message gives the file's URL).
CASES = {
    # gzip layer
    "gz_truncated": ("idx", "images", lambda t: _gz(_idx_bytes(_IMAGES))[:300],
                     "truncated gzip file", True),
    "gz_not_gzip": ("idx", "images", lambda t: _idx_bytes(_IMAGES),
                    "not a gzip file (it starts with bytes '00000803', an uncompressed idx "
                    "header; expected gzip's '1f8b')", True),
    "gz_garbage": ("idx", "labels", lambda t: b"<html>404 Not Found</html>\n" * 3,
                   "not a gzip file", True),
    "gz_crc": ("idx", "images", lambda t: _flip(_gz(_idx_bytes(_IMAGES)), -6),
               "corrupt gzip file (BadGzipFile: CRC check failed", True),
    "gz_deflate": ("idx", "images", lambda t: _flip(_gz(_idx_bytes(_IMAGES)), 12),
                   "corrupt gzip file (the compressed data cannot be decompressed: "
                   "zlib.error: Error -3", True),
    "gz_empty": ("idx", "images", lambda t: b"", "the file is empty (0 bytes", True),
    "labels_gz_empty": ("idx", "labels", lambda t: b"", "the file is empty (0 bytes", True),
    # idx layer
    "idx_magic": ("idx", "images", lambda t: _gz(b"\x08\x03\x00\x00" + bytes(100)),
                  "not an idx file (magic bytes '08030000'", True),
    "idx_dtype_code": ("idx", "images", lambda t: _gz(_idx_bytes(_IMAGES, code=0x07)),
                       "unknown idx data type code 0x07", True),
    "idx_rank_200": ("idx", "images", lambda t: _gz(b"\x00\x00\x08\xc8" + bytes(16)),
                     "idx header gives 200 dimensions, which need a 804-byte header", True),
    "idx_rank_200_long_file": (
        "idx", "images", lambda t: _gz(b"\x00\x00\x08\xc8" + bytes(2000)),
        "the idx payload has 1200 bytes, but the header's shape [0, 0, 0, 0, ...] "
        "(200 dimensions) of uint8 needs 0 bytes", True),
    "idx_absurd_dims": (  # 2**96 bytes: refused before anything is allocated
        "idx", "images",
        lambda t: _gz(b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
                      + bytes(784)),
        "the idx payload has 784 bytes, but the header's shape [4294967295, 4294967295, "
        "4294967295] (3 dimensions) of uint8 needs 79228162458924105385300197375 bytes", True),
    "idx_payload_short": ("idx", "images", lambda t: _gz(_idx_bytes(_IMAGES)[:-100]),
                          "(truncated file or header)", True),
    "idx_float_images": ("idx", "images",
                         lambda t: _gz(_idx_bytes(_IMAGES.astype(np.float32), code=0x0D)),
                         "images are float32 [10, 28, 28] (expected uint8 images", True),
    "idx_wrong_shape": ("idx", "images", lambda t: _gz(_idx_bytes(np.zeros((10, 32, 32),
                                                                          np.uint8))),
                        "images are uint8 [10, 32, 32] (expected uint8 images [N, 28, 28])",
                        True),
    "idx_count_mismatch": ("idx", "labels", lambda t: _gz(_idx_bytes(_LABELS[:9])),
                           "9 labels for the 10000 images in", False),
    "idx_labels_out_of_range": ("idx", "labels",
                                lambda t: _gz(_idx_bytes(np.full(10_000, 12, np.uint8))),
                                "labels span [12, 12] (expected [0, 9] for kmnist)", False),
    # npz
    "npz_empty": ("npz", "images", lambda t: b"", "the file is empty (0 bytes", True),
    "npz_labels_empty": ("npz", "labels", lambda t: b"", "the file is empty (0 bytes", True),
    "npz_not_zip": ("npz", "images", lambda t: b"<html>404 Not Found</html>\n" * 3,
                    "not an npz (zip) archive (it starts with bytes '3c68746d'", True),
    "npz_is_npy": ("npz", "images", lambda t: _npy_bytes(t, _IMAGES),
                   "not an npz (zip) archive (it is a .npy file", True),
    "npz_is_pickle": ("npz", "images", lambda t: pickle.dumps(_IMAGES),
                      "it holds pickled Python objects, which kjax never loads", True),
    "npz_pickled_objects": ("npz", "labels",
                            lambda t: _npz_bytes(t, np.array([{"label": 1}], dtype=object)),
                            "holds pickled Python objects under 'arr_0', which kjax never "
                            "loads", True),
    "npz_truncated": ("npz", "images", lambda t: _npz_bytes(t, _IMAGES)[:4000],
                      "truncated or corrupt npz archive (BadZipFile", True),
    "npz_crc": ("npz", "images", lambda t: _flip(_npz_bytes(t, _IMAGES), 500),
                "corrupt npz archive (BadZipFile: Bad CRC-32", True),
    "npz_wrong_key": ("npz", "images", lambda t: _npz_bytes(t, images=_IMAGES),
                      "no array 'arr_0' in the archive (it has ['images'])", True),
    "npz_float_images": ("npz", "images", lambda t: _npz_bytes(t, _IMAGES / 255.0),
                         "images are float64 [10, 28, 28] (expected uint8 images", True),
    "npz_flat_images": ("npz", "images", lambda t: _npz_bytes(t, _IMAGES.reshape(10, 784)),
                        "images are uint8 [10, 784] (expected uint8 images [N, 28, 28])",
                        True),
    "npz_float_labels": ("npz", "labels", lambda t: _npz_bytes(t, _LABELS.astype(np.float32)),
                         "labels are float32 [10] (expected integer labels [N])", True),
    "npz_count_mismatch": ("npz", "labels", lambda t: _npz_bytes(t, _LABELS),
                           "10 labels for the 10000 images in", False),
    "npz_labels_out_of_range": ("npz", "labels",
                                lambda t: _npz_bytes(t, np.full(10_000, -1, np.int64)),
                                "labels span [-1, -1] (expected [0, 9] for kmnist)", False),
}


@pytest.fixture(scope="module")
def official_npz(kmnist_dir, tmp_path_factory):
  """The real KMNIST test split as the official ``.npz`` variant (verified by content)."""
  folder = tmp_path_factory.mktemp("official_npz")
  images, labels = local.load_split_arrays(catalog.KMNIST, kmnist_dir, "test")
  np.savez(folder / NPZ.images.filename, images)
  np.savez(folder / NPZ.labels.filename, labels.astype(np.uint8))
  return str(folder)


@pytest.mark.parametrize("verify", [False, True], ids=["unverified", "verified"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_one_line_naming_the_file(case, verify, tmp_path, kmnist_dir,
                                              official_npz):
  fmt, which, make, says, undecodable = CASES[case]
  files, partner_dir = (IDX, kmnist_dir) if fmt == "idx" else (NPZ, official_npz)
  bad, good = ((files.images, files.labels) if which == "images"
               else (files.labels, files.images))
  os.symlink(os.path.join(partner_dir, good.filename), tmp_path / good.filename)
  bad_path = tmp_path / bad.filename
  bad_path.write_bytes(make(tmp_path))

  # A file whose own checksum is published is verified before it is decoded; one known
  # only by its decoded array is decoded (and checked) first.
  checksum_first = verify and bad.has_file_checksum
  checksum_after = verify and not undecodable and not bad.has_file_checksum
  expected = errors.ChecksumError if checksum_first or checksum_after else errors.DataError
  with pytest.raises(errors.KjaxError) as e:
    local.load_split_arrays(catalog.KMNIST, str(tmp_path), "test", verify_checksums=verify)
  message = str(e.value)
  assert type(e.value) is expected, message
  assert "\n" not in message and message.startswith(f"{bad_path}: "), message
  if expected is errors.ChecksumError:
    assert "SHA-256" in message and bad.url in message, message
  else:
    assert says in message, message
    assert "unsafely" not in message and "allow_pickle=" not in message, message
    if undecodable:
      assert message.endswith(f"; re-download it from {bad.url}"), message


def test_reader_messages_name_the_file_without_a_catalogue(tmp_path):
  """The readers alone (no FileSpec): the same one-line messages, without the URL."""
  path = tmp_path / "x-images-idx3-ubyte.gz"
  path.write_bytes(_gz(_idx_bytes(_IMAGES))[:300])
  with pytest.raises(errors.DataError, match=r"x-images-idx3-ubyte\.gz: truncated gzip file"):
    readers.read_array(path)
  path = tmp_path / "x-images-idx3-ubyte"  # uncompressed idx
  path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 10**9, 10**9, 10**9))
  with pytest.raises(errors.DataError, match=r"payload has 0 bytes.*needs 10{27} bytes"):
    readers.read_idx(path)
  path = tmp_path / "x.npz"
  path.write_bytes(_npz_bytes(tmp_path, np.array(["a", None], dtype=object)))
  with pytest.raises(errors.DataError, match="x.npz: holds pickled Python objects"):
    readers.read_npz(path)


def test_launcher_prints_one_error_line_and_writes_no_workdir(tiny_config, tmp_path,
                                                              kmnist_dir, capsys):
  from kjax import launcher  # noqa: PLC0415
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  (data_dir / IDX.images.filename).write_bytes(_gz(_idx_bytes(_IMAGES))[:300])
  os.symlink(os.path.join(kmnist_dir, IDX.labels.filename), data_dir / IDX.labels.filename)
  tiny_config.data.data_dir = str(data_dir)
  tiny_config.data.verify_checksums = False
  workdir = tmp_path / "run"
  assert launcher.run(tiny_config, str(workdir)) == 1
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if line.startswith("kjax: error:")]
  assert lines == [f"kjax: error: {data_dir / IDX.images.filename}: truncated gzip file (the "
                   "compressed data ends before the end-of-stream marker; expected a complete "
                   f"gzip stream); re-download it from {IDX.images.url}"], err
  assert "Traceback" not in err and not workdir.exists()
