"""ReproMan backend: SSH resources on Fabric."""

__version__ = "0.5.0"
