"""ReproMan orchestrators: DataLad datasets on the resource and back."""

__version__ = "0.5.0"
