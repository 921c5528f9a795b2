"""Entry point module: registers the batch-scheduler submitters.

Cheap to import on purpose: records name their implementation by import
path, so ``reproman plugins`` and ``reproman run --list`` never import the
scheduler modules. ``job_parameters`` is exactly what each submitter maps
to directives; core rejects any other (non-generic) job parameter.
"""

from __future__ import annotations

from reproman.plugins import SubmitterType, hookimpl

#: Kept in sync with each module's ``supported`` set (a test checks it).
SLURM = ("memory", "num_processes", "num_nodes", "walltime", "queue", "account", "qos", "gpus",
         "throttle", "max_array_size", "launcher", "directives")
PBS = ("memory", "num_processes", "num_nodes", "walltime", "queue", "account", "gpus",
       "throttle", "max_array_size", "launcher", "directives")
CONDOR = ("memory", "num_processes", "walltime", "account", "gpus", "throttle", "directives")
SGE = ("memory", "num_processes", "walltime", "queue", "account", "throttle", "max_array_size", "launcher",
       "directives")
LSF = ("memory", "num_processes", "num_nodes", "walltime", "queue", "account", "gpus",
       "throttle", "max_array_size", "launcher", "directives")


@hookimpl
def reproman_submitters() -> list[SubmitterType]:
    return [
        SubmitterType(
            name="slurm",
            description="Slurm: array jobs via sbatch, one squeue per poll, scancel",
            factory="reproman_submitters.slurm:SlurmSubmitter",
            job_parameters=SLURM,
        ),
        SubmitterType(
            name="pbs",
            description="PBS Pro/OpenPBS (qsub -J) or Torque (qsub -t, flavor=torque); not tested on a live PBS",
            factory="reproman_submitters.pbs:PBSSubmitter",
            job_parameters=PBS,
            settings=("flavor",),
        ),
        SubmitterType(
            name="condor",
            description="HTCondor: one cluster with 'queue N' via condor_submit -terse; not tested on a live pool",
            factory="reproman_submitters.condor:CondorSubmitter",
            job_parameters=CONDOR,
        ),
        SubmitterType(
            name="sge",
            description="Son of Grid Engine: arrays via qsub -t, one qstat -xml per poll, qacct, qdel",
            factory="reproman_submitters.sge:SGESubmitter",
            job_parameters=SGE,
        ),
        SubmitterType(
            name="lsf",
            description="IBM Spectrum LSF: job arrays via bsub -J 'name[1-N]'; not tested on a live LSF",
            factory="reproman_submitters.lsf:LSFSubmitter",
            job_parameters=LSF,
        ),
    ]
