r"""Runs a kjax experiment from a checkout: ``python launch.py --config=configs/beta_vae.py``.

The same command as the installed ``kjax`` console script (``kjax.cli``): ``--help`` lists
the flags, the shipped configs and every config field.
"""

from kjax import cli

if __name__ == "__main__":
  cli.run()
