"""The ``kjax`` command: the console script, ``python -m kjax`` and ``launch.py``.

SIGTERM and SIGINT are handled from ``main``'s first line (``kjax.preemption.command``),
before absl, ml_collections and JAX are imported (Python, the script's wrapper and
``import kjax``, which imports nothing heavy, come before it): a signal while the command
starts is one line, ``kjax: stopped by SIGTERM in starting the command; nothing was
written; …``, and exit status 143 / 130. The command itself is ``kjax.cli.run``.
"""

from __future__ import annotations

from typing import Sequence

from kjax import preemption


def main(argv: Sequence[str] | None = None) -> None:
  """Runs ``kjax.cli.run`` on ``argv`` (default ``sys.argv``, program name first); exits
  with its status (0, 1, 143 or 130)."""
  with preemption.command():
    preemption.phase("starting")  # the tests' injection point for the import window
    from kjax import cli  # noqa: PLC0415  (inside the handlers: absl, ml_collections, JAX)
    cli.run(argv)


if __name__ == "__main__":
  main()
