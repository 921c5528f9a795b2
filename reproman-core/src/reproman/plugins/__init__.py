"""The plugin API: everything a ReproMan plugin imports, from this one module.

A plugin distribution (a resource backend, a submitter, an orchestrator, a
tracer) imports ReproMan only as ``from reproman.plugins import ...``, and
its tests also from :mod:`reproman.testing`. The names below are the stable
surface: core may move its modules, these names stay. A test fails if a
plugin package of this repository imports anything else of core.

Importing this module is cheap (the markers and nothing else): every other
name is imported on first use, so a plugin's ``hooks`` module that says
``from reproman.plugins import hookimpl, ResourceType`` costs ``reproman
--help`` nothing but the records module. Type checkers see every name with
its type.

**Registering** (see :mod:`reproman.plugins.hookspecs` for each hook):
:data:`hookimpl` marks a hook implementation; the hooks return records,
:class:`ResourceType`, :class:`SessionType`, :class:`SubmitterType`,
:class:`OrchestratorType` and :class:`TracerType`, with :class:`Parameter`
records for what users pass (``create -b``, ``run --jp``). A name (and a
tracer's ``spec_name``) is declared once, in the record; core gives it to
the class when it loads it (``Resource.type``, ``Submitter.name``,
``Orchestrator.name``, ``Tracer.spec_name``) and refuses a class that
declares another.

**Resources and sessions**: :class:`Resource` (statuses :data:`ONLINE`,
:data:`OFFLINE`, :data:`RUNNING`, :data:`STOPPED`,
:data:`CONNECTION_ERROR`, :data:`NOT_FOUND`; jobs live under
:meth:`Resource.default_root_directory`, :data:`DEFAULT_ROOT_DIRECTORY`
unless a backend says otherwise), :class:`Session`, :class:`CommandResult`,
:data:`OutputCallback`; helpers for writing sessions:
:func:`wrap_command`, :func:`group_wrapper`, :func:`stdin_watch_wrapper` (a
command that stops when its caller dies), :func:`extract_to_staging`,
:func:`decode_output` (:data:`TEXT_ERRORS` is the error handler that keeps
bytes that are not UTF-8 through a round trip); where fetched results land:
:class:`Landing`, :class:`LandingReport`, :class:`KeptFile`. Sessions that
outlive a command: :func:`attach_persistent_session`,
:func:`shutdown_persistent_session`, :func:`persistent_sessions_enabled`,
:func:`persistent_idle_seconds`, and :func:`ask_on_terminal` for questions
to the user. Another plugin's session type by name: :func:`session_class`.
A secret resource parameter comes back from the environment variable
:meth:`ResourceType.secret_variable` names.

**Jobs**: a job is a :class:`JobSpec` of :class:`Subjob` s; a
:class:`Submitter` reports :class:`SchedulerState` s built from
:class:`State` and :class:`FailureReason`, with :class:`Usage`; core shows
:class:`SubjobStatus` es and a :class:`JobStatus` per job
(:func:`status_from_files` reads one from the job's status files). Core's
job parameters are :data:`JOB_PARAMETERS` (every submitter takes
:data:`GENERIC_JOB_PARAMETERS`); the job directory's files are named in
:class:`JobFiles`. An :class:`Orchestrator` may use :func:`relative_path`,
:func:`dump_record`, :func:`load_record` and :func:`local_record_dir`
(where a job's record is kept in the user's directory).

**Tracers**: :class:`Tracer`, returning :class:`TraceResult` and
:class:`Comparison` s of :class:`PackageDifference` s.

**Configuration and places**: :func:`get_config` (a :class:`Config`),
:func:`config_number` (a configured number checked, or one error line),
:func:`config_dir`, :func:`inventory_path`, :func:`recorded_resources`.

**Errors**: raise :class:`ReproManError` subclasses with a one-line
message and a ``hint`` saying what to do next; the CLI prints them without
a traceback. :class:`ConfigError`, :class:`UsageError` (and
:class:`BackendParameterError`), :class:`PluginError`;
:class:`ResourceError` with :class:`ResourceNotFoundError`,
:class:`ResourceExistsError` and :class:`ResourceConnectionError`;
:class:`InventoryError`; :class:`SessionError` with :class:`CommandError`,
:class:`OutputConflictError` and :class:`ResourceGoneError` (the resource was
removed behind ReproMan's back: following a job stops instead of retrying); :class:`JobError` with
:class:`SubmissionError` and :class:`OrchestratorError`;
:class:`TracingError`, :class:`SpecError`.

**Logging**: log under ``reproman.<your package>``
(``logging.getLogger("reproman.mything")``), never print.
"""

from reproman.plugins.markers import hookimpl, hookspec

TYPE_CHECKING = False  # typing costs start-up time
if TYPE_CHECKING:
    from reproman.config import Config as Config
    from reproman.config import config_number as config_number
    from reproman.config import get_config as get_config
    from reproman.errors import BackendParameterError as BackendParameterError
    from reproman.errors import CommandError as CommandError
    from reproman.errors import ConfigError as ConfigError
    from reproman.errors import InventoryError as InventoryError
    from reproman.errors import JobError as JobError
    from reproman.errors import OrchestratorError as OrchestratorError
    from reproman.errors import OutputConflictError as OutputConflictError
    from reproman.errors import PluginError as PluginError
    from reproman.errors import ReproManError as ReproManError
    from reproman.errors import ResourceConnectionError as ResourceConnectionError
    from reproman.errors import ResourceError as ResourceError
    from reproman.errors import ResourceExistsError as ResourceExistsError
    from reproman.errors import ResourceGoneError as ResourceGoneError
    from reproman.errors import ResourceNotFoundError as ResourceNotFoundError
    from reproman.errors import SessionError as SessionError
    from reproman.errors import SpecError as SpecError
    from reproman.errors import SubmissionError as SubmissionError
    from reproman.errors import TracingError as TracingError
    from reproman.errors import UsageError as UsageError
    from reproman.jobs.contracts import FailureReason as FailureReason
    from reproman.jobs.contracts import Orchestrator as Orchestrator
    from reproman.jobs.contracts import SchedulerState as SchedulerState
    from reproman.jobs.contracts import State as State
    from reproman.jobs.contracts import SubjobStatus as SubjobStatus
    from reproman.jobs.contracts import Submitter as Submitter
    from reproman.jobs.contracts import Usage as Usage
    from reproman.jobs.layout import JobFiles as JobFiles
    from reproman.jobs.layout import local_record_dir as local_record_dir
    from reproman.jobs.parameters import GENERIC as GENERIC_JOB_PARAMETERS  # noqa: F401 - exported as renamed
    from reproman.jobs.parameters import JOB_PARAMETERS as JOB_PARAMETERS
    from reproman.jobs.plain import relative_path as relative_path
    from reproman.jobs.registry import dump_record as dump_record
    from reproman.jobs.registry import load_record as load_record
    from reproman.jobs.spec import JobSpec as JobSpec
    from reproman.jobs.spec import Subjob as Subjob
    from reproman.jobs.status import JobStatus as JobStatus
    from reproman.jobs.status import status_from_files as status_from_files
    from reproman.paths import config_dir as config_dir
    from reproman.plugins.manager import session_class as session_class
    from reproman.plugins.records import OrchestratorType as OrchestratorType
    from reproman.plugins.records import Parameter as Parameter
    from reproman.plugins.records import ResourceType as ResourceType
    from reproman.plugins.records import SessionType as SessionType
    from reproman.plugins.records import SubmitterType as SubmitterType
    from reproman.plugins.records import TracerType as TracerType
    from reproman.resources.base import CONNECTION_ERROR as CONNECTION_ERROR
    from reproman.resources.base import DEFAULT_ROOT_DIRECTORY as DEFAULT_ROOT_DIRECTORY
    from reproman.resources.base import NOT_FOUND as NOT_FOUND
    from reproman.resources.base import OFFLINE as OFFLINE
    from reproman.resources.base import ONLINE as ONLINE
    from reproman.resources.base import RUNNING as RUNNING
    from reproman.resources.base import STOPPED as STOPPED
    from reproman.resources.base import Resource as Resource
    from reproman.resources.inventory import inventory_path as inventory_path
    from reproman.resources.inventory import recorded_resources as recorded_resources
    from reproman.resources.landing import KeptFile as KeptFile
    from reproman.resources.landing import Landing as Landing
    from reproman.resources.landing import LandingReport as LandingReport
    from reproman.resources.persistent import ask_on_terminal as ask_on_terminal
    from reproman.resources.persistent import attach as attach_persistent_session  # noqa: F401 - exported as renamed
    from reproman.resources.persistent import enabled as persistent_sessions_enabled  # noqa: F401 - exported as renamed
    from reproman.resources.persistent import idle_seconds as persistent_idle_seconds  # noqa: F401 - exported as renamed
    from reproman.resources.persistent import shutdown as shutdown_persistent_session  # noqa: F401 - exported as renamed
    from reproman.resources.session import TEXT_ERRORS as TEXT_ERRORS
    from reproman.resources.session import CommandResult as CommandResult
    from reproman.resources.session import OutputCallback as OutputCallback
    from reproman.resources.session import Session as Session
    from reproman.resources.session import decode as decode_output  # noqa: F401 - exported as renamed
    from reproman.resources.session import extract_to_staging as extract_to_staging
    from reproman.resources.session import group_wrapper as group_wrapper
    from reproman.resources.session import stdin_watch_wrapper as stdin_watch_wrapper
    from reproman.resources.session import wrap_command as wrap_command
    from reproman.tracing.tracer import Comparison as Comparison
    from reproman.tracing.tracer import PackageDifference as PackageDifference
    from reproman.tracing.tracer import Tracer as Tracer
    from reproman.tracing.tracer import TraceResult as TraceResult

#: Every exported name but the markers -> ``"module:attribute"`` it is loaded from on first use.
#: (The imports above say the same to type checkers; a test keeps the two in step.)
_EXPORTS: dict[str, str] = {
    # records
    "ResourceType": "reproman.plugins.records:ResourceType",
    "SessionType": "reproman.plugins.records:SessionType",
    "SubmitterType": "reproman.plugins.records:SubmitterType",
    "OrchestratorType": "reproman.plugins.records:OrchestratorType",
    "TracerType": "reproman.plugins.records:TracerType",
    "Parameter": "reproman.plugins.records:Parameter",
    "session_class": "reproman.plugins.manager:session_class",
    # resources and sessions
    "Resource": "reproman.resources.base:Resource",
    "ONLINE": "reproman.resources.base:ONLINE",
    "OFFLINE": "reproman.resources.base:OFFLINE",
    "RUNNING": "reproman.resources.base:RUNNING",
    "STOPPED": "reproman.resources.base:STOPPED",
    "CONNECTION_ERROR": "reproman.resources.base:CONNECTION_ERROR",
    "NOT_FOUND": "reproman.resources.base:NOT_FOUND",
    "DEFAULT_ROOT_DIRECTORY": "reproman.resources.base:DEFAULT_ROOT_DIRECTORY",
    "Session": "reproman.resources.session:Session",
    "CommandResult": "reproman.resources.session:CommandResult",
    "OutputCallback": "reproman.resources.session:OutputCallback",
    "TEXT_ERRORS": "reproman.resources.session:TEXT_ERRORS",
    "decode_output": "reproman.resources.session:decode",
    "wrap_command": "reproman.resources.session:wrap_command",
    "group_wrapper": "reproman.resources.session:group_wrapper",
    "stdin_watch_wrapper": "reproman.resources.session:stdin_watch_wrapper",
    "extract_to_staging": "reproman.resources.session:extract_to_staging",
    "Landing": "reproman.resources.landing:Landing",
    "LandingReport": "reproman.resources.landing:LandingReport",
    "KeptFile": "reproman.resources.landing:KeptFile",
    "attach_persistent_session": "reproman.resources.persistent:attach",
    "shutdown_persistent_session": "reproman.resources.persistent:shutdown",
    "persistent_sessions_enabled": "reproman.resources.persistent:enabled",
    "persistent_idle_seconds": "reproman.resources.persistent:idle_seconds",
    "ask_on_terminal": "reproman.resources.persistent:ask_on_terminal",
    "inventory_path": "reproman.resources.inventory:inventory_path",
    "recorded_resources": "reproman.resources.inventory:recorded_resources",
    # jobs
    "JobSpec": "reproman.jobs.spec:JobSpec",
    "Subjob": "reproman.jobs.spec:Subjob",
    "Submitter": "reproman.jobs.contracts:Submitter",
    "Orchestrator": "reproman.jobs.contracts:Orchestrator",
    "SchedulerState": "reproman.jobs.contracts:SchedulerState",
    "State": "reproman.jobs.contracts:State",
    "FailureReason": "reproman.jobs.contracts:FailureReason",
    "SubjobStatus": "reproman.jobs.contracts:SubjobStatus",
    "Usage": "reproman.jobs.contracts:Usage",
    "JobStatus": "reproman.jobs.status:JobStatus",
    "status_from_files": "reproman.jobs.status:status_from_files",
    "JOB_PARAMETERS": "reproman.jobs.parameters:JOB_PARAMETERS",
    "GENERIC_JOB_PARAMETERS": "reproman.jobs.parameters:GENERIC",
    "JobFiles": "reproman.jobs.layout:JobFiles",
    "relative_path": "reproman.jobs.plain:relative_path",
    "local_record_dir": "reproman.jobs.layout:local_record_dir",
    "dump_record": "reproman.jobs.registry:dump_record",
    "load_record": "reproman.jobs.registry:load_record",
    # tracers
    "Tracer": "reproman.tracing.tracer:Tracer",
    "TraceResult": "reproman.tracing.tracer:TraceResult",
    "Comparison": "reproman.tracing.tracer:Comparison",
    "PackageDifference": "reproman.tracing.tracer:PackageDifference",
    # configuration and places
    "Config": "reproman.config:Config",
    "get_config": "reproman.config:get_config",
    "config_number": "reproman.config:config_number",
    "config_dir": "reproman.paths:config_dir",
    # errors
    "ReproManError": "reproman.errors:ReproManError",
    "ConfigError": "reproman.errors:ConfigError",
    "UsageError": "reproman.errors:UsageError",
    "PluginError": "reproman.errors:PluginError",
    "ResourceError": "reproman.errors:ResourceError",
    "ResourceNotFoundError": "reproman.errors:ResourceNotFoundError",
    "ResourceExistsError": "reproman.errors:ResourceExistsError",
    "ResourceConnectionError": "reproman.errors:ResourceConnectionError",
    "BackendParameterError": "reproman.errors:BackendParameterError",
    "InventoryError": "reproman.errors:InventoryError",
    "SessionError": "reproman.errors:SessionError",
    "CommandError": "reproman.errors:CommandError",
    "OutputConflictError": "reproman.errors:OutputConflictError",
    "ResourceGoneError": "reproman.errors:ResourceGoneError",
    "JobError": "reproman.errors:JobError",
    "SubmissionError": "reproman.errors:SubmissionError",
    "OrchestratorError": "reproman.errors:OrchestratorError",
    "TracingError": "reproman.errors:TracingError",
    "SpecError": "reproman.errors:SpecError",
}

__all__ = ["hookimpl", "hookspec", *_EXPORTS]


def __getattr__(name: str) -> object:
    """Import an exported name on first use (PEP 562), and keep it for the next."""
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
