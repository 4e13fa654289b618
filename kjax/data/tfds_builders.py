"""TensorFlow-free TFDS builders over the official files.

TFDS's own ``kmnist``/``mnist`` builders read their downloads with ``tf.io.gfile`` and
encode images as PNG with TensorFlow, so they cannot be prepared without TF. These
builders download the same official URLs through TFDS's download manager, verify them
against the catalogue's checksums, decode them with kjax's numpy readers and write
ArrayRecord files, which ``tfds.data_source`` reads without TF. Images are stored as raw
uint8 tensors (``tfds.features.Tensor``), not PNG, for the same reason.

Builder names are ``kjax_<name>`` so they never collide with TFDS's registered builders.

Offline, TFDS's downloader retries each URL 10 times with exponential back-off (about 3.5
minutes) before it gives up. So before a download the builder probes each host it still
needs (a TCP connection within ``PROBE_TIMEOUT_S``, through the proxy ``requests`` would
use, if any) and fails at once when one cannot be reached; files TFDS has already
downloaded, and data sets already prepared, need no network and are not probed.
"""

from __future__ import annotations

import socket
import threading
import types
import urllib.parse

import numpy as np
import tensorflow_datasets as tfds

from kjax.data import catalog
from kjax.data import local
from kjax.data import readers


class OfficialFilesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Builds a catalogue data set from its official files (abstract; see ``builder_for``)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Official files, uint8 tensors, TF-free."}
  DATASET_INFO: catalog.DatasetInfo

  def _info(self) -> tfds.core.DatasetInfo:
    info = self.DATASET_INFO
    return self.dataset_info_from_configs(
        description=f"{info.name} from its official files (kjax, TF-free).",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=tuple(info.image_shape), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=list(info.class_romaji)),
        }),
        supervised_keys=("image", "label"),
        homepage=info.homepage,
        # Keep the official order, so that a split such as test[:8000] selects the same
        # images as the local-folder source.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    urls = [f.url for formats in self.DATASET_INFO.files.values()
            for f in (formats[0].images, formats[0].labels)]
    check_reachable([u for u in urls if not is_downloaded(dl_manager, self.name, u)])
    generators = {}
    for split, formats in self.DATASET_INFO.files.items():
      files = formats[0]
      paths = dl_manager.download({"images": files.images.url, "labels": files.labels.url})
      generators[split] = self._generate_examples(files, paths["images"], paths["labels"])
    return generators

  def _generate_examples(self, files: catalog.SplitFiles, images_path, labels_path):
    images = readers.read_array(images_path)
    labels = readers.read_array(labels_path)
    for spec, path, array in ((files.images, images_path, images),
                              (files.labels, labels_path, labels)):
      readers.verify_file(path, spec, array)
    images = local.check_images(self.DATASET_INFO, images_path, images)
    images = images.reshape(-1, *self.DATASET_INFO.image_shape)
    for i in range(len(images)):
      yield i, {"image": images[i], "label": int(labels[i])}


PROBE_TIMEOUT_S = 5.0  # per host, DNS included; the probes of several hosts run in parallel


def _probe_target(url: str) -> tuple[str, int] | None:
  """``(host, port)`` that a download of ``url`` connects to first: the proxy that
  ``requests`` (TFDS's downloader) takes from the environment for it, else the URL's host;
  None for a URL that is not http(s) (e.g. ``file://``)."""
  import requests  # noqa: PLC0415  (TFDS's own dependency, for its proxy rules)
  parts = urllib.parse.urlsplit(url)
  if parts.scheme not in ("http", "https") or not parts.hostname:
    return None
  proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
  if proxy:
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
  default_port = {"https": 443, "socks5": 1080, "socks5h": 1080, "socks4": 1080}
  return parts.hostname, parts.port or default_port.get(parts.scheme, 80)


def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str | None:
  """Tries a TCP connection to ``host:port``, name resolution included, for at most
  ``timeout`` seconds (the attempt runs in a daemon thread: ``getaddrinfo`` itself has no
  timeout).

  Returns:
    None when the connection opened, else why not, in one line.
  """
  result = []

  def connect():
    try:
      socket.create_connection((host, port), timeout=timeout).close()
      result.append(None)
    except socket.gaierror as e:
      result.append(f"{host} cannot be resolved: {e.strerror or e}")
    except socket.timeout:
      result.append(f"no answer from {host}:{port} in {timeout:g} s")
    except OSError as e:
      result.append(f"{host}:{port} cannot be reached: {e.strerror or e}")

  thread = threading.Thread(target=connect, name=f"kjax-probe-{host}", daemon=True)
  thread.start()
  thread.join(timeout)
  return result[0] if result else f"no answer from {host}:{port} in {timeout:g} s"


def check_reachable(urls: list[str], timeout: float = PROBE_TIMEOUT_S) -> None:
  """Probes (``probe``) the host of each http(s) URL in ``urls``, in parallel, each once.

  Raises:
    ConnectionError: a host (or its proxy) cannot be reached; the message says which and
      why, in one line. (``load_split_arrays`` reports it as a ``DataFileNotFoundError``.)
  """
  targets = sorted({t for t in map(_probe_target, urls) if t is not None})
  reasons = [None] * len(targets)

  def run(i, target):
    reasons[i] = probe(*target, timeout=timeout)

  threads = [threading.Thread(target=run, args=(i, t), daemon=True)
             for i, t in enumerate(targets)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(timeout + 1)
  failed = [r for r in reasons if r is not None]
  if failed:
    raise ConnectionError("; ".join(failed))


def is_downloaded(dl_manager: tfds.download.DownloadManager, dataset_name: str,
                  url: str) -> bool:
  """Whether TFDS's download manager already holds ``url`` (a complete download of an
  earlier, interrupted preparation), so that it needs no network. Where TFDS's cache
  layout cannot be read, True: the download is then left to TFDS, as before the probe."""
  try:
    from tensorflow_datasets.core.download import resource  # noqa: PLC0415
    fname = resource.get_dl_fname(url)
    return any(resource.is_locally_cached(folder / fname)
               for folder in (dl_manager.download_dir / dataset_name, dl_manager.download_dir))
  except Exception:  # noqa: BLE001  (a TFDS internal changed: keep its own behaviour)
    return True


def builder_for(info: catalog.DatasetInfo, data_dir: str | None = None) -> OfficialFilesBuilder:
  """Returns the TF-free TFDS builder of a catalogue data set.

  Args:
    info: the catalogue entry.
    data_dir: where TFDS keeps prepared data sets (None: TFDS's default,
      ``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``).
  """
  namespace = {"DATASET_INFO": info, "name": f"kjax_{info.name}", "__module__": __name__}
  cls = types.new_class(f"Kjax{info.name.capitalize()}", (OfficialFilesBuilder,),
                        {"skip_registration": True}, lambda ns: ns.update(namespace))
  return cls(data_dir=data_dir, file_format="array_record")


def load_split_arrays(info: catalog.DatasetInfo, split: str, data_dir: str | None = None,
                      download: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Loads a (sliced) split through TFDS, preparing it first if needed.

  Args:
    info: the catalogue entry.
    split: a TFDS split spec, e.g. ``'test[:8000]'``.
    data_dir: TFDS data directory (None: TFDS's default).
    download: download and prepare the data set if it is not prepared yet.

  Returns:
    ``(images, labels)``: uint8 ``[N, H, W]`` (``info.image_shape``) and int32 ``[N]``.

  Raises:
    ChecksumError: a downloaded file is not the official one.
    DataError: the prepared images are not of ``info.image_shape`` (one line).
    DataFileNotFoundError: the download failed, or its host could not be reached within
      ``PROBE_TIMEOUT_S`` (e.g. no internet: then in seconds, not after TFDS's retries).
  """
  builder = builder_for(info, data_dir)
  if download:
    try:
      builder.download_and_prepare()
    except OSError as e:  # requests' connection errors are OSErrors
      files = ", ".join(f"{f.images.filename}, {f.labels.filename}"
                        for formats in info.files.values() for f in formats[:1])
      raise readers.DataFileNotFoundError(
          f"could not download {info.name} through TFDS ({str(e).splitlines()[0][:200]}); "
          f"without internet, put the official files ({files}, from {info.homepage}) in a "
          "folder and pass --config.data.data_dir=FOLDER") from e
  source = builder.as_data_source(split=split)
  examples = [source[i] for i in range(len(source))]
  images = np.stack([np.asarray(e["image"], np.uint8) for e in examples])
  images = local.check_images(info, f"TFDS {builder.name} {split}", images)
  labels = np.asarray([e["label"] for e in examples], np.int32)
  return images, labels
