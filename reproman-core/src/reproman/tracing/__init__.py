"""Provenance: trace files to the packages that provide them, diff and install specs."""
