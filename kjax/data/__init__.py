"""Data: KMNIST and MNIST from TFDS (TF-free) or a folder of official files; data sets of
other sizes in the same formats through ``register``."""

from kjax.data.catalog import DatasetInfo, get_dataset_info, register, unregister
from kjax.data.loading import Dataset, load_datasets, load_split_arrays
from kjax.data.readers import ChecksumError, DataFileNotFoundError

__all__ = ["ChecksumError", "DataFileNotFoundError", "Dataset", "DatasetInfo",
           "get_dataset_info", "load_datasets", "load_split_arrays", "register", "unregister"]
