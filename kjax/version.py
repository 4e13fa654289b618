"""kjax's version (as pyproject.toml's), recorded in every evaluation's inputs."""

__version__ = "0.1.0"
