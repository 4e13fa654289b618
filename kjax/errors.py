"""Errors a user can fix from the command line; ``launch.py`` reports them as one line.

Each also derives from the matching built-in (ValueError, FileNotFoundError, ...), so
callers may catch either. Anything else that escapes a run is a bug and keeps its traceback.
"""


class KjaxError(Exception):
  """Base of the errors reported without a traceback."""


class ConfigError(KjaxError, ValueError):
  """A config value is not allowed; the message names the value and what is allowed."""


class DataError(KjaxError, ValueError):
  """A split spec or a data file's contents is not usable; the message says why."""


class DataFileNotFoundError(KjaxError, FileNotFoundError):
  """An official data file is missing (or could not be downloaded)."""


class ChecksumError(KjaxError, ValueError):
  """A data file's checksum differs from the official one."""


class NonFiniteLossError(KjaxError, FloatingPointError):
  """The training loss became NaN or infinite.

  Attributes:
    workdir: the run that diverged (a sweep marks it and trains the others on).
    step, epoch: where the loss was first seen non-finite (1-based epoch).
    last_good_step: the newest checkpoint kept (None: none yet).
  """

  def __init__(self, message: str, workdir: str = "", step: int | None = None,
               epoch: int | None = None, last_good_step: int | None = None):
    super().__init__(message)
    self.workdir = workdir
    self.step = step
    self.epoch = epoch
    self.last_good_step = last_good_step


class NonFiniteSamplesError(KjaxError, FloatingPointError):
  """The images a checkpoint generates hold NaN or infinite pixels: its parameters are
  corrupt, or the run diverged before it was saved. ``kjax.generate`` and the evaluation
  refuse such samples (nothing is written) rather than draw or score them.

  Attributes:
    workdir, step: the run and its checkpoint's step.
  """

  def __init__(self, workdir: str, step: int, detail: str):
    super().__init__(f"the samples of the checkpoint at step {step} in {workdir} are not "
                     f"finite ({detail}); the checkpoint may be corrupt or the run diverged")
    self.workdir = workdir
    self.step = step

  @classmethod
  def check(cls, images, step: int, workdir: str) -> None:
    """Raises the error if float ``images [N, ...]`` (numpy or JAX) hold NaN or infinity;
    its message counts the images that do."""
    import numpy as np  # noqa: PLC0415  (this module imports nothing else)

    images = np.asarray(images)
    flat = images.reshape(len(images), -1) if images.ndim else images.reshape(1, 1)
    nan = int(np.isnan(flat).any(axis=1).sum())
    inf = int(np.isinf(flat).any(axis=1).sum())
    if nan or inf:
      parts = [f"{n} of {len(flat)} images hold {what}"
               for n, what in ((nan, "NaN"), (inf, "infinite pixels")) if n]
      raise cls(workdir, step, ", ".join(parts))


class CheckpointMismatchError(KjaxError):
  """A checkpoint cannot be restored: its tree differs from the state the config builds
  (another model, or a run saved by an older kjax), or, with ``corrupt``, its files cannot
  be read (truncated, missing).

  Attributes:
    corrupt: True when the files are damaged rather than of another model.
  """

  def __init__(self, message: str, corrupt: bool = False):
    super().__init__(message)
    self.corrupt = corrupt


class WriteError(KjaxError, OSError):
  """A file of the run could not be written (full disk, read-only or missing folder, quota);
  the message names the path and the OS error. The file's previous version is intact
  (written atomically: temporary file, then rename)."""


class WorkdirLockedError(KjaxError):
  """Another live process trains or evaluates the workdir; the message names its PID and
  host."""


class Interrupted(KjaxError):
  """Training stopped on SIGTERM or SIGINT after saving a checkpoint at the step in flight.

  Attributes:
    exit_code: the conventional status, 128 + the signal number (143 for SIGTERM, 130 for
      SIGINT).
  """

  def __init__(self, message: str, exit_code: int):
    super().__init__(message)
    self.exit_code = exit_code
