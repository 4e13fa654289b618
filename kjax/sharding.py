"""Every program's devices: one mesh of all devices of all processes, axes ``runs`` × ``data``.

A sweep's stacked runs (``kjax.sweep``) are split over ``runs``; each run's batch is split
over ``data`` (data parallelism: the compiler inserts the gradient all-reduce). Built on
``jit`` + ``jax.sharding`` (``jax.make_mesh``, ``NamedSharding``, ``jax.P``), never on
``pmap``. The mesh uses *auto* axes: kjax places the inputs (``put``) and constrains each
batch (``constrain_batch``); the partitioner propagates the rest. Shapes that do not divide
the mesh are padded: R runs on a ``runs`` axis of size D are stacked as ``ceil(R / D) · D``
runs, the last repeated and its copies' results discarded (``pad_runs``); a batch that does
not divide ``data`` is padded and masked by the partitioner itself (GSPMD's uneven shards).

The final evaluation runs on process 0 alone, its batches split over that process's devices
(``split_batch``, ``local_mesh``).

Several hosts (``jax.distributed``, ``initialize_distributed``): every process runs the
same program on the global mesh; arrays are built from each process's identical host copy
(``put``) and read back whole on every process (``to_host``); only ``is_writer()``
(process 0) writes shared files.

Config (``config.mesh``; 0 = automatic)::

  config.mesh.runs = 0   # devices along the run axis of a stacked sweep group
  config.mesh.data = 0   # devices along each run's batch
"""

from __future__ import annotations

import functools
import math
import os
import threading
from typing import Any, Callable, Sequence

from absl import logging
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from kjax import errors
from kjax import peers
from kjax import preemption

RUNS, DATA = "runs", "data"
# How ``jax.distributed.initialize()`` finds a multi-process job by itself (jax._src.clusters):
# a variable whose value says there is more than one process, or a pair that must be set.
CLUSTER_ENV = {"SLURM_NTASKS": "> 1", "OMPI_COMM_WORLD_SIZE": "> 1",
               "TPU_WORKER_HOSTNAMES": "several", "JAX_COORDINATOR_ADDRESS": "set",
               "KUBERNETES_SERVICE_HOST+JOB_COMPLETION_INDEX": "set"}


def mesh_shape(num_devices: int, num_runs: int, runs: int = 0, data: int = 0) -> tuple[int, int]:
  """The ``(runs, data)`` sizes of the mesh for a program of ``num_runs`` stacked runs.

  Automatic (0) sizes: a single run (or runs mapped one after another) puts every device
  on ``data``; a stack of R runs puts on ``runs`` the largest divisor of ``num_devices``
  that is at most R (8 devices, 3 runs → 2 × 4; 31 runs → 8 × 1, 32 stacked), the rest on
  ``data``.

  Args:
    num_devices: devices of the job (all processes).
    num_runs: runs stacked in the program (1 for a single run).
    runs, data: ``config.mesh.runs`` / ``config.mesh.data``; 0 chooses.

  Raises:
    ConfigError: a size < 0, one that does not divide ``num_devices``, or two sizes whose
      product is not ``num_devices``.
  """
  for name, value in (("runs", runs), ("data", data)):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (
        value and num_devices % value):
      divisors = [d for d in range(1, num_devices + 1) if num_devices % d == 0]
      raise errors.ConfigError(f"config.mesh.{name}={value!r} is not allowed: expected 0 "
                               f"(automatic) or a divisor of the {num_devices} devices "
                               f"{tuple(divisors)}")
  if runs and data and runs * data != num_devices:
    raise errors.ConfigError(f"config.mesh.runs={runs} × config.mesh.data={data} is not "
                             f"allowed: the product must be the {num_devices} devices")
  if runs:
    return runs, num_devices // runs
  if data:
    return num_devices // data, data
  if num_runs <= 1:
    return 1, num_devices
  runs = max(d for d in range(1, min(num_runs, num_devices) + 1) if num_devices % d == 0)
  return runs, num_devices // runs


def make_mesh(num_runs: int = 1, mesh_config: Any = None,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """The ``runs`` × ``data`` mesh over ``devices`` (default: every device of every process,
  ``jax.devices()``) for ``num_runs`` stacked runs; ``mesh_config`` is ``config.mesh`` (or
  None: automatic), sized by ``mesh_shape``.

  Raises:
    ConfigError: see ``mesh_shape``.
  """
  devices = list(devices or jax.devices())
  mesh_config = mesh_config or {}
  shape = mesh_shape(len(devices), num_runs, mesh_config.get("runs", 0),
                     mesh_config.get("data", 0))
  if shape[0] > num_runs:
    logging.warning("kjax: config.mesh.runs=%d is more than the %d run(s) of this program: "
                    "%d of every %d devices repeat another's work", shape[0], num_runs,
                    shape[0] - num_runs, shape[0])
  return jax.make_mesh(shape, (RUNS, DATA), axis_types=(AxisType.Auto, AxisType.Auto),
                       devices=devices)


def padded_runs(num_runs: int, mesh: Mesh) -> int:
  """``num_runs`` rounded up to a multiple of the mesh's ``runs`` axis."""
  size = mesh.shape[RUNS]
  return math.ceil(num_runs / size) * size


def pad_runs(items: list, mesh: Mesh) -> list:
  """``items`` (one per run) with the last repeated up to ``padded_runs``: the stacked
  program's padding, whose results are discarded."""
  return list(items) + [items[-1]] * (padded_runs(len(items), mesh) - len(items))


def put(tree: Any, mesh: Mesh, spec: P = P()) -> Any:
  """``tree``'s leaves (host or single-device arrays, identical on every process) as
  global arrays laid out by ``NamedSharding(mesh, spec)``: ``P()`` replicated,
  ``P(RUNS)`` split along a leading run axis. Works across processes
  (``jax.make_array_from_callback``: each process fills its own devices)."""
  sharding = NamedSharding(mesh, spec)

  def one(x):
    if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
      data = put(jax.random.key_data(x), mesh, spec)
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  return jax.tree.map(one, tree)


def constrain_batch(tree: Any, mesh: Mesh | None) -> Any:
  """Inside a compiled step: every leaf's leading (batch) axis split over ``data`` (under
  ``jax.vmap(..., spmd_axis_name=RUNS)`` the run axis goes over ``runs``). No-op without a
  mesh or with one data device."""
  if mesh is None or mesh.shape[DATA] == 1:
    return tree
  return jax.lax.with_sharding_constraint(tree, NamedSharding(mesh, P(DATA)))


@functools.cache
def local_mesh() -> Mesh:
  """This process's devices as one ``data`` axis: the mesh of the work process 0 does alone
  (the final evaluation's batches)."""
  return make_mesh(1, devices=jax.local_devices())


def split_batch(fn: Callable, argnums: Sequence[int], mesh: Mesh | None = None) -> Callable:
  """``jax.jit(fn)`` with the leading axis of its arguments ``argnums`` split over
  ``mesh``'s ``data`` axis (default ``local_mesh()``): the evaluation's batches (IWAE,
  sampling, posteriors, classifier features) on every local device. Arguments come in, and
  results go out, replicated on the mesh (a batch of 10 rows on 4 devices is split unevenly
  inside only). Numbers are the one-device ones (same shapes and noise) up to the order of
  sums over the batch."""
  mesh = mesh or local_mesh()
  if mesh.shape[DATA] == 1:
    return jax.jit(fn)
  replicated = NamedSharding(mesh, P())

  @functools.wraps(fn)
  def wrapped(*args):
    return fn(*(constrain_batch(a, mesh) if i in argnums else a for i, a in enumerate(args)))

  return jax.jit(wrapped, in_shardings=replicated, out_shardings=replicated)


def settle(tree: Any, mesh: Mesh | None) -> Any:
  """Waits for ``tree`` when ``mesh`` spans several CPU devices; returns it. XLA:CPU runs
  every device's share of a program on one thread pool: with two programs in flight, each
  can hold a thread in a collective whose partner cannot get one (measured: an all-reduce
  rendezvous timeout and abort with 2 virtual devices on 2 cores). GPUs and TPUs keep their
  asynchronous dispatch."""
  if mesh is not None and mesh.devices.size > 1 and mesh.devices.flat[0].platform == "cpu":
    jax.block_until_ready(tree)
  return tree


def to_host(tree: Any) -> Any:
  """``tree``'s leaves as numpy arrays, whole, on every process (a collective where an
  array spans other processes' devices: every process must call it at the same point)."""
  from jax.experimental import multihost_utils  # noqa: PLC0415

  def one(x):
    if not isinstance(x, jax.Array):
      return np.asarray(x)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    if x.is_fully_addressable:
      return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  return jax.tree.map(one, tree)


def local(tree: Any) -> Any:
  """``tree`` usable by this process alone (figures, final evaluation): unchanged in a
  single-process job, a host copy (``to_host``, collective) in a multi-process one."""
  return tree if jax.process_count() == 1 else to_host(tree)


def is_writer() -> bool:
  """Whether this process writes shared files (``config.json``, metrics, summaries,
  figures, reports): process 0 of a multi-process job, or the only process."""
  return jax.process_index() == 0


def barrier(name: str, timeout_s: int = 24 * 3600) -> None:
  """Waits until every process reaches ``barrier(name)`` (no-op for one process), e.g. the
  others while process 0 runs the final evaluation. ``timeout_s`` reaches orbax's
  ``sync_global_processes``, whose default barrier (a jitted all-gather across every
  device, ``multihost_utils.sync_global_devices``) has none: a lost peer ends the wait.

  The wait is one blocking call into XLA, during which Python runs no signal handler; it
  runs in a helper thread while the main thread waits on it, so that SIGTERM and SIGINT stop
  this process within 0.5 s (``kjax.preemption.Stopped``: one line, 143 / 130) instead of
  when every other process has arrived; the others then report the lost process
  (``kjax.peers``). The helper thread is then left blocked: the process must exit (the
  command does, ``preemption.exit_now``).

  Raises:
    kjax.preemption.Stopped: a signal during the wait. Whatever the barrier raised (a lost
    peer: ``jax.errors.JaxRuntimeError``).
  """
  if jax.process_count() > 1:
    import orbax.checkpoint as ocp  # noqa: PLC0415
    failed = []

    def wait():
      try:
        ocp.multihost.sync_global_processes(name, timeout=timeout_s)
      except BaseException as e:  # noqa: BLE001  (raised again in the main thread)
        failed.append(e)

    waiting = threading.Thread(target=wait, name=f"kjax-barrier-{name}", daemon=True)
    waiting.start()
    logging.info("kjax: waiting for the job's other processes (%s)", name)
    preemption.phase("barrier")  # the main thread waits: a signal is handled here
    while waiting.is_alive():
      # A timed wait: a signal that the OS delivers to the helper thread interrupts nothing
      # here, and Python runs its handler when the wait times out.
      waiting.join(0.5)
    if failed:
      raise failed[0]


def cluster_detected(environ: dict | None = None) -> bool:
  """Whether the environment is a multi-process job that ``jax.distributed.initialize()``
  joins by itself (``CLUSTER_ENV``): SLURM or Open MPI with more than one task, a
  multi-host Cloud TPU, a Kubernetes indexed job, or ``JAX_COORDINATOR_ADDRESS``."""
  env = os.environ if environ is None else environ
  for names, rule in CLUSTER_ENV.items():
    values = [env.get(name) for name in names.split("+")]
    if not all(values):
      continue
    if rule == "set" or (rule == "several" and "," in values[0]) or (
        rule == "> 1" and values[0].isdigit() and int(values[0]) > 1):
      return True
  return False


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None
                           ) -> bool:
  """Joins a multi-process job with ``jax.distributed.initialize`` (before any other JAX
  call): explicitly with all three arguments, automatically where ``cluster_detected``
  (SLURM, Open MPI, Kubernetes, Cloud TPU), otherwise not at all. CPU devices talk through
  gloo collectives. A process that dies is noticed by the others within
  ``kjax.peers.HEARTBEAT_S`` and reported in one line (``kjax.peers``).

  Returns:
    Whether a multi-process job was joined.

  Raises:
    ConfigError: some but not all of the three arguments, ``num_processes < 1``, or a
      ``process_id`` outside ``0..num_processes-1``; ``coordinator_address`` not HOST:PORT.
  """
  given = [v is not None for v in (coordinator_address, num_processes, process_id)]
  if any(given) and not all(given):
    raise errors.ConfigError("--coordinator_address, --num_processes and --process_id go "
                             "together: give all three (or none, on a cluster JAX detects)")
  if all(given):
    host, _, port = coordinator_address.rpartition(":")
    if not host or not port.isdigit():
      raise errors.ConfigError(f"--coordinator_address={coordinator_address!r} is not "
                               "allowed: expected HOST:PORT, e.g. 10.0.0.1:1234")
    if num_processes < 1:
      raise errors.ConfigError(f"--num_processes={num_processes} is not allowed: expected "
                               "an integer >= 1")
    if not 0 <= process_id < num_processes:
      raise errors.ConfigError(f"--process_id={process_id} is not allowed: expected 0.."
                               f"{num_processes - 1}")
  elif not cluster_detected():
    return False
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               heartbeat_timeout_seconds=peers.HEARTBEAT_S)
  except ValueError as e:  # detected a cluster, but JAX could not read it
    first = next((line for line in str(e).splitlines() if line.strip()), "")
    raise errors.ConfigError(f"jax.distributed.initialize() failed ({first[:200]}); give "
                             "--coordinator_address, --num_processes and --process_id") from None
  peers.guard_stderr(jax.process_index(), jax.process_count())  # JAX's abort: one line
  return True
