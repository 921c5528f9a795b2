"""ReproMan backend: Docker container resources on the Docker SDK."""

__version__ = "0.5.0"
