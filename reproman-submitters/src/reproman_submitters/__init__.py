"""ReproMan submitters: Slurm, PBS, HTCondor, LSF and SGE batch schedulers."""

__version__ = "0.5.0"
