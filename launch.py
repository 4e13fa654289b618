r"""Runs a kjax experiment from a checkout: ``python launch.py --config=configs/beta_vae.py``.

The same command as the installed ``kjax`` console script (``kjax.__main__``): ``--help``
lists the flags, the shipped configs and every config field. From its first line, SIGTERM
and SIGINT give one kjax line and exit status 143 / 130 (``kjax.preemption``).
"""

from kjax.__main__ import main

if __name__ == "__main__":
  main()
