r"""The ``kjax`` command (and ``python launch.py``): one experiment from the command line.

  kjax --config=beta_vae [--workdir=DIR] [--config.objective.beta=1.0 ...]
  python launch.py --config=configs/beta_vae.py [...]              # the same, in a checkout

``--mode=train`` (default) trains, then evaluates (``WORKDIR/eval/metrics.json``,
``WORKDIR/report.html``); re-running resumes from the newest checkpoint in the workdir.
``--mode=evaluate --workdir=W`` evaluates the newest checkpoint of the run in W with W's own
``config.json`` (``--config.eval.*`` flags change what is measured). ``--mode=repair
--workdir=W`` rebuilds W's ``config.json``, ``metrics.jsonl`` and ``summary.json`` from its
newest checkpoint (each checkpoint records them). A config with a
``sweep`` section (``beta_vae_sweep``) runs a whole ablation study; ``--mode=results``
rebuilds its tables and figures from finished runs.

``--config`` is a config file or the name of one shipped with kjax (``kjax.configs.NAMES``).
The workdir defaults to ``runs/<config name>``. Every device of the machine is used;
several processes form one job through ``jax.distributed`` (automatically on SLURM, Open
MPI, Kubernetes and Cloud TPU, or ``--coordinator_address=HOST:PORT --num_processes=N
--process_id=I``). ``--help`` lists the config's fields.

A bad flag or config value is one line, ``kjax: error: ...``, exit status 1, before anything
is written.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from typing import Sequence

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags

from kjax import config_fields
from kjax import configs as kconfigs
from kjax import preemption
from kjax import workdir_config


def define_flags() -> None:
  """Defines the command line's absl flags, once (``run`` calls it; importing this module
  defines none, so that it can live beside other absl programs such as ``kjax.generate``)."""
  if "mode" in flags.FLAGS:
    return
  config_flags.DEFINE_config_file(
      "config", None, "Experiment config: a file (configs/beta_vae.py) or the name of one "
      f"shipped with kjax ({', '.join(kconfigs.NAMES)}). Its values are overridden with "
      "--config.SECTION.FIELD=VALUE.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config name>).")
  flags.DEFINE_enum("mode", "train", ["train", "evaluate", "results", "repair"],
                    "train (then evaluate); evaluate an existing run only (with the config "
                    "in WORKDIR/config.json); for a sweep, rebuild results.csv/md, "
                    "figures and report.html only; or repair: rebuild a run's config.json, "
                    "metrics.jsonl and summary.json from its newest checkpoint.")
  flags.DEFINE_string(
      "coordinator_address", None, "HOST:PORT of process 0 of a multi-process job "
      "(jax.distributed.initialize); with --num_processes and --process_id. Unset: joined "
      "automatically where JAX detects the cluster (SLURM, Open MPI, Kubernetes, Cloud "
      "TPU), else one process.")
  flags.DEFINE_integer("num_processes", None, "Processes in the job.")
  flags.DEFINE_integer("process_id", None, "This process's index, 0..N-1.")


# Set by parse_flags: the config was read from WORKDIR/config.json (no --config given).
CONFIG_FROM_WORKDIR = False
HELP_FLAGS = ("-h", "--help", "--helpshort", "--helpfull", "-?")
# The config of an existing run: --config=WORKDIR_CONFIG:WORKDIR (kjax.workdir_config).
WORKDIR_CONFIG = os.path.join(os.path.dirname(__file__), "workdir_config.py")


class UsageError(Exception):
  """A bad command line; the message is the one line printed after ``kjax: error:``."""


def _flag_value(argv: Sequence[str], name: str) -> tuple[int, str | None]:
  """(index, value) of the last ``--name=V`` or ``--name V`` in ``argv``; (-1, None) if absent."""
  found = (-1, None)
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      found = (i, arg.split("=", 1)[1])
    elif arg == f"--{name}" and i + 1 < len(argv):
      found = (i, argv[i + 1])
  return found


def resolve_config_arg(value: str) -> str:
  """``--config``'s value as a file path: a file as given, or a shipped config's name
  (``cvae`` → ``.../kjax/configs/cvae.py``), keeping a ``:ARG`` suffix.

  Raises:
    UsageError: neither an existing file nor a shipped config's name.
  """
  path, sep, arg = value.partition(":")
  if os.path.isfile(path):
    return value
  name = os.path.splitext(os.path.basename(path))[0] if path.endswith(".py") else path
  # A name, or configs/NAME.py run from outside a checkout; never a user's own folder.
  if name in kconfigs.NAMES and os.path.dirname(path) in ("", "configs"):
    return kconfigs.path(name) + sep + arg
  raise UsageError(f"--config={value!r}: no such config file; give a file or one of: "
                   f"{', '.join(kconfigs.NAMES)}")


def load_config(value: str):
  """The ``ConfigDict`` that ``--config=value`` (a file path, ``PATH:ARG`` allowed) builds.

  Raises:
    UsageError: the file is not a config file, does not load, or its ``get_config`` fails.
  """
  path, _, arg = value.partition(":")
  shown = value if not path.startswith(WORKDIR_CONFIG) else arg
  try:
    spec = importlib.util.spec_from_file_location("kjax_cli_config", path)
    if spec is None or not path.endswith(".py"):
      raise UsageError(f"--config={shown!r}: not a config file (a .py file with get_config())")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
  except UsageError:
    raise
  except Exception as e:  # a user's file: name it, and the error, in one line
    message = (str(e).splitlines() or [""])[0]
    raise UsageError(f"--config={shown!r} could not be loaded: {type(e).__name__}: "
                     f"{message}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise UsageError(f"--config={shown!r}: get_config() returned a {type(config).__name__}; "
                     "expected an ml_collections.ConfigDict")
  return config  # its fields: kjax.launcher.dispatch (tasks.unknown_fields)


def check_overrides(config, argv: Sequence[str]) -> None:
  """Refuses a ``--config.KEY`` (or ``--noconfig.KEY``) override whose KEY is neither a
  field nor a section of ``config``, with the config's closest field as a suggestion.

  Raises:
    UsageError: naming the unknown key and what it may have meant.
  """
  fields = workdir_config.flatten(config)
  for arg in argv:
    prefix = next((p for p in ("--config.", "--noconfig.") if arg.startswith(p)), None)
    if prefix is None:
      continue
    key = arg[len(prefix):].split("=", 1)[0]
    if key in fields or any(f.startswith(key + ".") for f in fields):
      continue  # a field, or a whole section (ml_collections accepts both)
    guesses = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
    hint = (f"did you mean --config.{guesses[0]}?" if guesses
            else f"the sections are {', '.join(sorted({k.split('.')[0] for k in fields}))}")
    raise UsageError(f"{arg.split('=', 1)[0]}: no such config field; {hint} "
                     "(--help lists every field)")


def help_text(config_value: str | None) -> str:
  """``--help``: the usage, the flags, the shipped configs and the config's fields."""
  lines = [__doc__.strip(), "", "flags:"]
  for name in ("config", "workdir", "mode", "coordinator_address", "num_processes",
               "process_id"):
    flag = flags.FLAGS[name]
    lines.append(f"  --{name}: {flag.help}")
  lines += ["", f"configs shipped with kjax: {', '.join(kconfigs.NAMES)}"]
  name = "beta_vae"
  if config_value:
    try:
      value = resolve_config_arg(config_value)
      config = load_config(value)
      name = config_value
    except Exception:  # the help is still shown; the error comes when the run is launched
      config = kconfigs.get_config(name)
  else:
    config = kconfigs.get_config(name)
  lines += ["", f"config fields of {name} (override with --config.SECTION.FIELD=VALUE; "
            "--config=NAME --help shows another config's):"]
  table = _fields_table(config)
  section = None
  for key, value in workdir_config.flatten(config).items():
    head = key.split(".")[0] if "." in key else ""
    if head != section:
      section = head
      lines.append(f"  [{head or 'top level'}]")
    row = config_fields.lookup(table, key)
    note = "" if row is None else "  # " + row.meaning + (
        f" ({row.allowed()})" if row.allowed() else "")
    lines.append(f"    {key} = {value!r}{note}")
  return "\n".join(lines)


def _fields_table(config) -> dict:
  """The table of config fields of ``config``'s model family (``kjax.tasks.fields_of``;
  the shared rows for a benchmark or an unknown family)."""
  from kjax import tasks  # noqa: PLC0415  (JAX: only for --help's meanings)
  try:
    return tasks.fields_of(config.get("model") or {})
  except Exception:  # noqa: BLE001  (the error comes when the run is launched)
    return config_fields.SHARED


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with kjax's command line: ``--help`` prints ``help_text`` and exits
  0; ``--config=NAME`` takes a shipped config; ``--mode=evaluate|results|repair --workdir=W``
  without ``--config`` uses ``W/config.json``; unknown config fields and bad values exit 1
  with one line. Returns the remaining arguments (the program name)."""
  args = list(argv[1:])
  if any(a in HELP_FLAGS for a in args):
    print(help_text(_flag_value(args, "config")[1]))
    sys.exit(0)
  global CONFIG_FROM_WORKDIR
  try:
    args = flags.FLAGS.read_flags_from_files(args, force_gnu=False)  # --flagfile=F expanded
    i, value = _flag_value(args, "config")
    _, mode = _flag_value(args, "mode")
    _, workdir = _flag_value(args, "workdir")
    if value is None:
      if mode in ("evaluate", "results", "repair") and workdir:
        if (not os.path.isfile(os.path.join(workdir, "config.json"))
            and workdir_config.recorded_config(workdir) is None
            and not (mode == "repair" and os.path.isdir(os.path.join(workdir, "runs")))):
          raise UsageError(f"--workdir={workdir!r} is not a kjax run: no config.json in it")
        value = f"{WORKDIR_CONFIG}:{workdir}"
        args.insert(0, f"--config={value}")  # before the overrides, which it defines
        CONFIG_FROM_WORKDIR = True
      else:
        raise UsageError("--config is required: a config file or one of "
                         f"{', '.join(kconfigs.NAMES)} (--help lists them)")
    else:
      resolved = resolve_config_arg(value)
      if resolved != value:
        args[i] = f"--config={resolved}"
        if args[i + 1:i + 2] == [value]:  # the '--config NAME' form
          del args[i + 1]
        value = resolved
    config = load_config(value)
    check_overrides(config, args)
    rest = flags.FLAGS([argv[0]] + args)
  except UsageError as e:
    _fail(str(e))
  except flags.Error as e:
    message = str(e)
    if message.startswith("flag --config."):  # a value of the wrong type: say which is right
      key = message[len("flag --config."):].split("=", 1)[0]
      fields = workdir_config.flatten(config)
      if key in fields:
        default = fields[key]
        message += f" (config.{key} is {type(default).__name__}, e.g. {default!r})"
      else:
        message += f" (config.{key} is a section: set its fields, --config.{key}.FIELD=VALUE)"
    _fail(message)
  except (AttributeError, KeyError, TypeError, ValueError) as e:  # a value ml_collections refused
    message = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
    _fail(message.replace("\\n", " ").splitlines()[0])
  if len(rest) > 1:
    _fail(f"unexpected arguments: {' '.join(rest[1:])} (flags are --name=value)")
  return rest


def _fail(message: str) -> None:
  print(f"kjax: error: {message}", file=sys.stderr, flush=True)
  sys.exit(1)


def config_name() -> str:
  """The name of ``--config`` (``configs/cvae.py`` → ``cvae``), for the default workdir."""
  filename = config_flags.get_config_filename(flags.FLAGS["config"])
  return os.path.splitext(os.path.basename(filename))[0]


def main(argv: Sequence[str]) -> None:
  """Runs ``kjax.launcher.run`` on the parsed flags and exits with its status."""
  del argv  # checked by parse_flags
  from kjax import launcher  # after flag parsing: keeps --help and flag errors fast
  f = flags.FLAGS
  workdir = f.workdir or os.path.join("runs", config_name())
  status = launcher.run(f.config, workdir, f.mode,
                        {"coordinator_address": f.coordinator_address,
                         "num_processes": f.num_processes, "process_id": f.process_id},
                        config_from_workdir=CONFIG_FROM_WORKDIR)
  if status in (preemption.exit_code(s) for s in preemption.SIGNALS):
    preemption.exit_now(status)  # no library exit hook after a stop
  sys.exit(status)


def run(argv: Sequence[str] | None = None) -> None:
  """The command behind ``kjax`` and ``launch.py``: parses ``argv`` (default ``sys.argv``)
  and runs the experiment; exits with 0 on success, 1 after a one-line error, 143 / 130
  after SIGTERM / SIGINT. Call it through ``kjax.__main__.main``, which handles those
  signals from before this module is imported (``preemption.command``)."""
  if argv is not None:
    sys.argv = list(argv)  # ml_collections reads the --config.* overrides from sys.argv
  try:
    define_flags()
  except flags.Error as e:  # e.g. a --flagfile that cannot be read
    _fail(str(e).splitlines()[0])
  app.run(main, flags_parser=parse_flags)
