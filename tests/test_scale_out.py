"""Scale-out (kjax.sharding, jax.distributed, sweep parts, Ray): the same numbers on any mesh.

The reference is the tiny study of ``tests/scale_out_job.py`` run here on the test process's
one CPU device. The other layouts run in subprocesses (JAX fixes its devices and processes
when it starts): 4 virtual CPU devices; 2 ``jax.distributed`` processes × 2 devices on
127.0.0.1 (gloo collectives); 2 sweep parts run as separate processes and merged; a local Ray
instance with 2 workers. Each must give the reference's ``results.csv`` and ``summary.json``
within ``RTOL`` (relative; a std across runs on the scale of its mean): the runs' PRNG streams, data order and batches are those of the one-device
run, but a batch split over devices sums its gradient in another order (float32), and a
stack of 2 runs compiles differently from a stack of 3. Measured: at most 1.2e-7 relative.
"""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from kjax import sharding
from kjax import sweep
from tests import scale_out_job

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(REPO, "tests", "scale_out_job.py")
RTOL = 1e-5


def _port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int | None = None) -> dict:
  env = dict(os.environ)
  # The session's own flags (tests/conftest.py) stay; the device count is the test's.
  flags = [f for f in env.pop("XLA_FLAGS", "").split() if "device_count" not in f]
  if devices:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  if flags:
    env["XLA_FLAGS"] = " ".join(flags)
  return env


def _check(procs, logs, timeout=600):
  for p, log in zip(procs, logs):
    p.wait(timeout=timeout)
    with open(log) as f:
      text = f.read()
    assert p.returncode == 0, text[-3000:]


def _job(workdir, *args, log_name="job"):
  """Starts ``scale_out_job.py WORKDIR ARGS``; returns ``(process, log path)``."""
  log = os.path.join(workdir, f"{log_name}.log")
  os.makedirs(workdir, exist_ok=True)
  with open(log, "w") as f:
    p = subprocess.Popen([sys.executable, JOB, workdir, *args], stdout=f,
                         stderr=subprocess.STDOUT, env=_env(), cwd=REPO)
  return p, log


def _two_processes(workdir, *args):
  port = _port()
  started = [_job(workdir, "--devices=2", f"--coordinator_address=127.0.0.1:{port}",
                  "--num_processes=2", f"--process_id={i}", *args, log_name=f"process{i}")
             for i in range(2)]
  _check(*zip(*started))


def _rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def assert_same_numbers(got: dict, want: dict, where: str):
  assert got.keys() == want.keys(), where
  for key, w in want.items():
    g = got[key]
    try:
      w, g = float(w), float(g)
    except ValueError:
      assert g == w, (where, key)
      continue
    # A std across runs is compared on the scale of the values it spreads (their mean).
    mean = key[:-4] + "_mean"
    scale = abs(float(want[mean])) if key.endswith("_std") and mean in want else abs(w)
    assert abs(g - w) <= RTOL * max(1.0, scale), (where, key, g, w)


def assert_same_study(workdir, reference):
  got, want = _rows(os.path.join(workdir, "sweep", "results.csv")), _rows(
      os.path.join(reference, "sweep", "results.csv"))
  assert len(got) == len(want) == 1 and got[0]["n"] == "3"
  assert_same_numbers(got[0], want[0], "results.csv")
  for name in ("seed=0", "seed=1", "seed=2"):
    for path in (os.path.join("sweep", "runs", name, "summary.json"),):
      with open(os.path.join(workdir, path)) as f, open(os.path.join(reference, path)) as g:
        assert_same_numbers(json.load(f), json.load(g), path)


def assert_same_single(workdir, reference):
  path = os.path.join("single", "summary.json")
  with open(os.path.join(workdir, path)) as f, open(os.path.join(reference, path)) as g:
    got, want = json.load(f), json.load(g)
  assert got["step"] == want["step"] == 16
  assert_same_numbers(got, want, path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The study on this process's single CPU device."""
  workdir = str(tmp_path_factory.mktemp("one_device"))
  cache = os.path.join(workdir, "cache")
  sweep.run_sweep(scale_out_job.sweep_config(cache), os.path.join(workdir, "sweep"))
  from kjax import experiment  # noqa: PLC0415
  experiment.train_and_evaluate(scale_out_job.single_config(cache),
                                os.path.join(workdir, "single"))
  return workdir


def test_mesh_shapes_and_bad_sizes():
  assert sharding.mesh_shape(8, 1) == (1, 8)  # one run: data parallel
  assert sharding.mesh_shape(8, 3) == (2, 4)  # 3 runs: 2 × 4, padded to 4
  assert sharding.mesh_shape(8, 31) == (8, 1)  # 31 runs padded to 32
  assert sharding.mesh_shape(4, 3, data=4) == (1, 4)
  assert sharding.mesh_shape(4, 1, runs=2) == (2, 2)
  with pytest.raises(sharding.errors.ConfigError,
                     match=r"config.mesh.data=3 is not allowed: .* divisor of the 4 devices "
                           r"\(1, 2, 4\)"):
    sharding.mesh_shape(4, 1, data=3)
  with pytest.raises(sharding.errors.ConfigError, match=r"product must be the 4 devices"):
    sharding.mesh_shape(4, 1, runs=2, data=4)
  with pytest.raises(sharding.errors.ConfigError, match=r"config.mesh.runs=-1 is not allowed"):
    sharding.mesh_shape(4, 1, runs=-1)


def test_sweep_parts_are_disjoint_balanced_and_checked(tmp_path):
  config = scale_out_job.sweep_config(str(tmp_path / "cache"))
  config.sweep.seed = tuple(range(7))
  runs = sweep.expand(config, str(tmp_path))
  parts = [sweep.shard_runs(runs, f"{i}/3") for i in range(3)]
  names = [r.name for part in parts for r in part]
  assert sorted(names) == sorted(r.name for r in runs)  # disjoint, covering
  assert [len(p) for p in parts] == [3, 2, 2]
  assert sweep.shard_runs(runs, "") == runs
  for bad in ("3/3", "1", "a/2", "-1/2"):
    config.sweep.shard = bad
    with pytest.raises(sweep.errors.ConfigError,
                       match=rf"config.sweep.shard='{bad}' is not allowed: expected 'i/n'"):
      sweep.run_sweep(config, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")  # refused before anything was written
  config.sweep.shard = "0/2"
  config.sweep.executor = "ray"
  with pytest.raises(sweep.errors.ConfigError, match=r"shard='0/2' with config.sweep.executor="
                                                     r"'ray' is not allowed"):
    sweep.run_sweep(config, str(tmp_path / "w"))
  config.sweep.shard = ""
  config.sweep.executor = "slurm"
  with pytest.raises(sweep.errors.ConfigError, match=r"executor='slurm' is not allowed"):
    sweep.run_sweep(config, str(tmp_path / "w"))


def test_distributed_arguments_are_checked():
  with pytest.raises(sharding.errors.ConfigError, match="go together: give all three"):
    sharding.initialize_distributed("127.0.0.1:1234", None, 0)
  with pytest.raises(sharding.errors.ConfigError, match=r"--process_id=2 is not allowed: "
                                                        r"expected 0..1"):
    sharding.initialize_distributed("127.0.0.1:1234", 2, 2)
  with pytest.raises(sharding.errors.ConfigError, match="expected HOST:PORT"):
    sharding.initialize_distributed("localhost", 2, 0)
  assert not sharding.cluster_detected({"SLURM_NTASKS": "1"})
  assert sharding.cluster_detected({"SLURM_NTASKS": "4"})
  assert not sharding.cluster_detected({"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
  assert sharding.cluster_detected({"KUBERNETES_SERVICE_HOST": "10.0.0.1",
                                    "JOB_COMPLETION_INDEX": "0"})
  assert sharding.cluster_detected({"TPU_WORKER_HOSTNAMES": "t0,t1"})
  assert not sharding.initialize_distributed()  # no cluster here: one process


def test_four_virtual_devices_give_the_one_device_numbers(reference, tmp_path):
  workdir = str(tmp_path)
  _check(*zip(_job(workdir, "--devices=4")))
  assert_same_study(workdir, reference)
  assert_same_single(workdir, reference)
  with open(os.path.join(workdir, "sweep", "runs", "seed=0", "timing.json")) as f:
    assert json.load(f)["mesh"] == {"runs": 2, "data": 2}  # 3 runs padded to 4
  with open(os.path.join(workdir, "single", "timing.json")) as f:
    assert json.load(f)["mesh"] == {"runs": 1, "data": 4}  # batch 30 over 4 devices


def test_a_conv_run_on_four_devices_drifts_from_one_device_within_its_bound(tmp_path):
  """16 steps of the tiny conv β-VAE on 4 devices stay within ``RTOL`` of one device
  (measured: 6.7e-8). A default-length run drifts further (docs/scaling.md, from
  benchmarks/device_drift.py: up to 5e-3 in its last epoch's losses)."""
  one, four = str(tmp_path / "one"), str(tmp_path / "four")
  from kjax import experiment  # noqa: PLC0415
  experiment.train_and_evaluate(scale_out_job.conv_config(os.path.join(one, "cache")),
                                os.path.join(one, "conv"))
  _check(*zip(_job(four, "--devices=4", "--what=conv")))
  paths = [os.path.join(w, "conv", "summary.json") for w in (one, four)]
  with open(paths[0]) as f, open(paths[1]) as g:
    want, got = json.load(f), json.load(g)
  assert want["step"] == got["step"] == 16 and got != want  # not bit-identical: 4 sums
  worst = max(abs(got[k] - want[k]) / abs(want[k]) for k in want if "/" in k)
  assert worst <= RTOL, worst


def test_final_evaluation_on_four_devices_gives_the_one_device_numbers(reference, tmp_path):
  one, four = str(tmp_path / "one"), str(tmp_path / "four")
  for copy in (one, four):
    shutil.copytree(os.path.join(reference, "single"), os.path.join(copy, "single"))
  scale_out_job.evaluate(os.path.join(one, "single"))
  _check(*zip(_job(four, "--devices=4", "--what=evaluate")))
  paths = [os.path.join(w, "single", "eval", "metrics.json") for w in (one, four)]
  with open(paths[0]) as f, open(paths[1]) as g:
    want, got = json.load(f)["metrics"], json.load(g)["metrics"]
  assert {"iwae_nll", "fd", "kid", "precision", "cas"} <= want.keys()
  for key in [k for k, v in want.items() if isinstance(v, list)]:  # per dimension, class
    assert len(got[key]) == len(want[key])
    assert_same_numbers({str(i): v for i, v in enumerate(got.pop(key))},
                        {str(i): v for i, v in enumerate(want.pop(key))}, key)
  assert_same_numbers(got, want, "eval/metrics.json")


def test_two_processes_give_the_one_device_numbers(reference, tmp_path):
  workdir = str(tmp_path)
  _two_processes(workdir)
  assert_same_study(workdir, reference)
  assert_same_single(workdir, reference)
  with open(os.path.join(workdir, "single", "timing.json")) as f:
    timing = json.load(f)
  assert timing["processes"] == 2 and timing["mesh"] == {"runs": 1, "data": 4}
  # No persistent compilation cache in a job: process 0 alone would write it.
  assert timing["compile_cache"] == {"dir": None, "hits": 0, "misses": 0}
  # One writer: every epoch is logged once.
  with open(os.path.join(workdir, "single", "metrics.jsonl")) as f:
    assert [json.loads(line)["epoch"] for line in f] == [1, 2]


def test_sweep_parts_as_separate_processes_merge_to_the_same_results(reference, tmp_path):
  workdir = str(tmp_path)
  started = [_job(workdir, "--what=sweep", f"--shard={i}/2", log_name=f"part{i}")
             for i in range(2)]
  _check(*zip(*started))
  assert not os.path.exists(os.path.join(workdir, "sweep", "results.csv"))  # parts only train
  assert os.path.exists(os.path.join(workdir, "sweep", "timing.part-1-of-2.json"))
  sweep.rebuild_results(scale_out_job.sweep_config(str(tmp_path / "cache")),
                        os.path.join(workdir, "sweep"))  # --mode=results
  assert_same_study(workdir, reference)


def test_sweep_on_a_local_ray_instance_gives_the_same_results(reference, tmp_path):
  pytest.importorskip("ray")
  workdir = str(tmp_path)
  _check(*zip(_job(workdir, "--what=sweep", "--executor=ray", "--parts=2")))
  assert_same_study(workdir, reference)
  with open(os.path.join(workdir, "sweep", "timing.json")) as f:
    assert json.load(f)["invocations"][-1]["parts"] == 2


def _launch(workdir, port, i, epochs, fault=None, evaluate=False, extra=()):
  """``launch.py`` as process ``i`` of 2 (the CLI's own --coordinator_address flags);
  ``fault``: ``KJAX_FAULT_AT`` of this process (kjax.preemption.phase); ``extra``: more
  flags."""
  log = os.path.join(os.path.dirname(workdir), f"launch{i}.log")
  args = [sys.executable, os.path.join(REPO, "launch.py"), "--config=configs/cvae_sweep.py",
          f"--workdir={workdir}", "--config.sweep.architecture=('mlp',)",
          "--config.sweep.latent_dim=(2,)", "--config.sweep.seed=(0,1)",
          "--config.data.name=kmnist",
          f"--config.data.data_dir={os.path.join(os.path.dirname(REPO), 'shared', 'data', 'kmnist')}",
          f"--config.data.cache_dir={workdir}-cache{i}", "--config.data.train_split=test[:256]",
          "--config.data.eval_split=test[9800:]", f"--config.train.num_epochs={epochs}",
          "--config.train.batch_size=32", "--config.train.checkpoint_every_steps=8",
          "--config.train.log_every_steps=8", "--config.train.steps_per_call=1",
          f"--config.eval.at_end_of_training={evaluate}", "--config.model.hidden=64",
          "--config.eval.iwae_samples=16", "--config.eval.cas_epochs=0", *extra,
          f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"]
  env = _env(2) if fault is None else {**_env(2), "KJAX_FAULT_AT": fault}
  with open(log, "a") as f:
    return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO), log


def test_a_killed_process_fails_the_job_clearly_and_a_relaunch_resumes(tmp_path):
  workdir = str(tmp_path / "study")
  epochs = 40  # 320 steps: far from done when the kill comes
  port = _port()
  procs, logs = zip(*(_launch(workdir, port, i, epochs) for i in range(2)))
  ckpt = os.path.join(workdir, "runs", "architecture=mlp,latent_dim=2,seed=0", "checkpoints", "16")
  deadline = time.time() + 300
  while not os.path.isdir(ckpt) and time.time() < deadline and procs[0].poll() is None:
    time.sleep(0.5)
  assert os.path.isdir(ckpt), open(logs[0]).read()[-3000:]
  procs[1].send_signal(signal.SIGKILL)
  procs[0].wait(timeout=120)  # not JAX's heartbeat timeout (100 s) plus its shutdown barrier
  with open(logs[0]) as f:
    text = f.read()
  assert procs[0].returncode == 1
  assert "kjax: error: process 0 of 2: another process of the job stopped" in text
  assert "re-launch every process with the same command" in text
  # The relaunch (2 epochs after the last checkpoint, to finish soon) resumes from it.
  # The newest step both runs kept (a kill can leave one run a checkpoint ahead).
  saved = min(max(int(d) for d in os.listdir(os.path.join(workdir, "runs", run, "checkpoints"))
                  if d.isdigit())
              for run in ("architecture=mlp,latent_dim=2,seed=0",
                          "architecture=mlp,latent_dim=2,seed=1"))
  epochs = saved // 8 + 2
  port = _port()
  procs, logs = zip(*(_launch(workdir, port, i, epochs) for i in range(2)))
  _check(procs, logs)
  with open(logs[1]) as f:
    assert f"kjax: resumed from the checkpoint at step {saved}" in f.read()
  with open(os.path.join(workdir, "runs", "architecture=mlp,latent_dim=2,seed=1",
                         "metrics.jsonl")) as f:
    assert [json.loads(line)["epoch"] for line in f] == list(range(1, epochs + 1))
  assert os.path.exists(os.path.join(workdir, "results.csv"))


def test_sigterm_to_one_process_stops_the_job_at_one_checkpoint_step(tmp_path):
  """A scheduler preempting one host: SIGTERM to process 1 only. Both processes agree on
  the step (kjax.preemption), both runs of the sweep are checkpointed there, and both
  processes exit with 143."""
  workdir = str(tmp_path / "study")
  port = _port()
  procs, logs = zip(*(_launch(workdir, port, i, 40) for i in range(2)))
  runs = [os.path.join(workdir, "runs", f"architecture=mlp,latent_dim=2,seed={s}") for s in (0, 1)]
  ckpt = os.path.join(runs[0], "checkpoints", "16")
  deadline = time.time() + 300
  while not os.path.isdir(ckpt) and time.time() < deadline and procs[0].poll() is None:
    time.sleep(0.5)
  assert os.path.isdir(ckpt), open(logs[0]).read()[-3000:]
  procs[1].send_signal(signal.SIGTERM)
  for p in procs:
    p.wait(timeout=120)
  texts = [open(log).read() for log in logs]
  assert [p.returncode for p in procs] == [143, 143], texts[0][-2000:] + texts[1][-2000:]
  stopped = [[line for line in t.splitlines() if "kjax: stopped by SIGTERM at step" in line]
             for t in texts]
  assert all(len(s) == 1 for s in stopped), stopped
  step = int(stopped[0][0].split("at step ")[1].split("/")[0])
  assert stopped[1][0] == stopped[0][0] and step % 8 == 0 and step > 16  # a log step
  for run in runs:
    assert max(int(d) for d in os.listdir(os.path.join(run, "checkpoints")) if d.isdigit()) == step
