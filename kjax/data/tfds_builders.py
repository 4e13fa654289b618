"""TensorFlow-free TFDS builders over the official files.

TFDS's own ``kmnist``/``mnist`` builders read their downloads with ``tf.io.gfile`` and
encode images as PNG with TensorFlow, so they cannot be prepared without TF. These
builders download the same official URLs through TFDS's download manager, verify them
against the catalogue's checksums, decode them with kjax's numpy readers and write
ArrayRecord files, which ``tfds.data_source`` reads without TF. Images are stored as raw
uint8 tensors (``tfds.features.Tensor``), not PNG, for the same reason.

Builder names are ``kjax_<name>`` so they never collide with TFDS's registered builders.
"""

from __future__ import annotations

import types

import numpy as np
import tensorflow_datasets as tfds

from kjax.data import catalog
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
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=list(info.class_romaji)),
        }),
        supervised_keys=("image", "label"),
        homepage=info.homepage,
        # Keep the official order, so that a split such as test[:8000] selects the same
        # images as the local-folder source.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
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
    images = images.reshape(-1, 28, 28, 1)
    for i in range(len(images)):
      yield i, {"image": images[i], "label": int(labels[i])}


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
    ``(images, labels)``: uint8 ``[N, 28, 28]`` and int32 ``[N]``.

  Raises:
    ChecksumError: a downloaded file is not the official one.
    DataFileNotFoundError: the download failed (e.g. no internet).
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
  images = np.stack([np.asarray(e["image"], np.uint8) for e in examples]).reshape(-1, 28, 28)
  labels = np.asarray([e["label"] for e in examples], np.int32)
  return images, labels
