"""Discover plugins through entry points and serve components by name.

Discovery is lazy and happens once per process: nothing here runs until a
command actually needs a resource type, submitter, orchestrator or tracer.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import threading
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import pluggy

from reproman.errors import DuplicateComponentError, PluginError, UnknownComponentError
from reproman.plugins import hookspecs
from reproman.plugins.markers import ENTRY_POINT_GROUP, PROJECT_NAME
from reproman.plugins.records import (
    OrchestratorType,
    ResourceType,
    SessionType,
    SubmitterType,
    TracerType,
    _Component,
    normalize_name,
)

if TYPE_CHECKING:
    from reproman.resources.session import Session

if sys.version_info >= (3, 10):
    from importlib import metadata as importlib_metadata
else:  # pragma: no cover - exercised only on old interpreters
    import importlib_metadata

lgr = logging.getLogger(__name__)

STRICT_ENV = "REPROMAN_PLUGINS_STRICT"
DISABLE_ENV = "REPROMAN_PLUGINS_DISABLE"
CORE_DISTRIBUTION = "reproman-core"
BUILTIN_PLUGIN = "builtin"

C = TypeVar("C", bound=_Component)

#: What a user should install to get a well-known component that is missing.
KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    "resource type": {
        "docker-container": "reproman-backend-docker",
        "ssh": "reproman-backend-ssh",
        "aws-ec2": "reproman-backend-aws",
    },
    "session type": {"ssh": "reproman-backend-ssh", "docker": "reproman-backend-docker"},
    "submitter": {
        "slurm": "reproman-submitters",
        "pbs": "reproman-submitters",
        "condor": "reproman-submitters",
        "lsf": "reproman-submitters",
        "sge": "reproman-submitters",
    },
    "orchestrator": {
        "datalad-pair": "reproman-orchestrators-datalad",
        "datalad-no-remote": "reproman-orchestrators-datalad",
        "datalad-pair-run": "reproman-orchestrators-datalad",
        "datalad-local-run": "reproman-orchestrators-datalad",
    },
    "tracer": {},
}

_HOOKS: dict[str, tuple[str, type[_Component]]] = {
    "resource type": ("reproman_resource_types", ResourceType),
    "session type": ("reproman_session_types", SessionType),
    "submitter": ("reproman_submitters", SubmitterType),
    "orchestrator": ("reproman_orchestrators", OrchestratorType),
    "tracer": ("reproman_tracers", TracerType),
}


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One loaded (or failed) plugin, as ``reproman plugins`` shows it."""

    name: str
    distribution: str
    version: str
    module: str
    error: str | None = None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class PluginManager:
    """Loads plugins and keeps one registry per kind of component."""

    def __init__(self, *, strict: bool | None = None, disabled: Iterable[str] | None = None,
                 quiet: bool = False) -> None:
        self.strict = _truthy(os.environ.get(STRICT_ENV)) if strict is None else strict
        #: Broken plugins are collected without a warning each (``plugins --check`` lists them itself).
        self.quiet = quiet
        if disabled is None:
            disabled = [d for d in os.environ.get(DISABLE_ENV, "").replace(",", " ").split() if d]
        self.disabled = {normalize_name(d) for d in disabled}
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs.ReproManHookSpecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[PluginInfo] = []
        self._registries: dict[str, dict[str, Any]] = {}
        self._loaded = False
        # Threads of an embedding application may ask for components at once.
        self._lock = threading.RLock()

    # -- loading ---------------------------------------------------------
    def load(self) -> None:
        """Register the built-ins and every entry point of the ``reproman`` group."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        builtin_seen = False
        entry_points = sorted(importlib_metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        self._warn_unknown_disabled([ep.name for ep in entry_points])
        for ep in entry_points:
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown"
            version = dist.version if dist is not None else "unknown"
            if ep.name == BUILTIN_PLUGIN and normalize_name(dist_name) == CORE_DISTRIBUTION:
                builtin_seen = True
            if normalize_name(ep.name) in self.disabled:
                lgr.debug("plugin %s disabled by %s", ep.name, DISABLE_ENV)
                continue
            if ep.name in self.plugins:
                # The same distribution seen twice on sys.path (e.g. editable + wheel).
                continue
            try:
                module = ep.load()
            except Exception as exc:
                self._fail(ep.name, dist_name, version, ep.value, exc)
                continue
            self.register(module, name=ep.name, distribution=dist_name, version=version)
        if not builtin_seen:
            # Running from a source tree without installed metadata: the
            # built-ins still go through the same hooks.
            from reproman import __version__
            from reproman.plugins import builtin

            self.register(builtin, name=BUILTIN_PLUGIN, distribution=CORE_DISTRIBUTION, version=__version__)

    def _fail(self, name: str, dist: str, version: str, module: str, exc: BaseException) -> None:
        error = f"failed to load: {type(exc).__name__}: {exc}"
        self._broken(name, dist, version, module, f"plugin {name!r} from {dist} {version} {error}", error, exc)

    def _broken(self, name: str, dist: str, version: str, module: str, message: str, error: str,
                cause: BaseException | None = None) -> None:
        """Report a broken plugin once and remember it; strict mode raises instead."""
        if self.strict:
            raise PluginError(message, hint=f"Unset {STRICT_ENV} to skip broken plugins.") from cause
        if any(f.name == name and f.error == error for f in self.failures):
            return
        if self.quiet:
            lgr.debug("%s", message)
        else:
                lgr.warning("%s (skipped; set %s=%s to hide it)", message, DISABLE_ENV, name)
        self.failures.append(PluginInfo(name=name, distribution=dist, version=version, module=module, error=error))

    def _warn_unknown_disabled(self, names: Iterable[str]) -> None:
        unknown = sorted(self.disabled - {normalize_name(n) for n in names})
        if unknown:
            lgr.warning("%s names no installed plugin: %s (installed: %s)", DISABLE_ENV, ", ".join(unknown),
                        ", ".join(sorted(names)) or "none")

    def register(self, module: ModuleType | object, *, name: str, distribution: str, version: str) -> None:
        """Register a hook module; also the way tests and embedding apps add plugins."""
        self.pm.register(module, name=name)
        module_name = getattr(module, "__name__", type(module).__name__)
        self.plugins[name] = PluginInfo(name=name, distribution=distribution, version=version, module=module_name)
        self._registries.clear()

    # -- registries ------------------------------------------------------
    def _registry(self, kind: str) -> dict[str, Any]:
        with self._lock:
            return self._build_registry(kind)

    def _build_registry(self, kind: str) -> dict[str, Any]:
        self.load()
        if kind in self._registries:
            return self._registries[kind]
        hook_name, record_type = _HOOKS[kind]
        registry: dict[str, Any] = {}
        hook = getattr(self.pm.hook, hook_name)
        # Core's built-ins first, so a plugin can never shadow them; then the others in name order.
        impls = sorted(hook.get_hookimpls(), key=lambda i: (self.pm.get_name(i.plugin) != BUILTIN_PLUGIN,
                                                           self.pm.get_name(i.plugin) or ""))
        for impl in impls:
            plugin_name = self.pm.get_name(impl.plugin) or "?"
            info = self.plugins.get(plugin_name) or PluginInfo(
                name=plugin_name, distribution="unknown", version="unknown", module=plugin_name)
            try:
                records = list(impl.function() or [])
            except Exception as exc:
                self._broken(plugin_name, info.distribution, info.version, info.module,
                             f"plugin {plugin_name!r} from {info.distribution} {info.version}: its {hook_name} hook "
                             f"raised {type(exc).__name__}: {exc}", f"{hook_name} raised {type(exc).__name__}: {exc}",
                             exc)
                continue
            wrong = [r for r in records if not isinstance(r, record_type)]
            if wrong:
                # One bad record makes the whole answer suspect: skip the plugin's answer.
                got = type(wrong[0]).__name__
                error = f"its {hook_name} hook returned a {got}; it must return {record_type.__name__} records"
                self._broken(plugin_name, info.distribution, info.version, info.module,
                             f"plugin {plugin_name!r} from {info.distribution} {info.version}: {error}", error)
                continue
            for record in records:
                record = attrs.evolve(record, distribution=info.distribution, version=info.version)
                previous = registry.get(record.name)
                if previous is not None:
                    error = f"its {kind} {record.name!r} is already offered by {previous.distribution} {previous.version}"
                    if self.strict:
                        raise DuplicateComponentError(
                            f"{kind} {record.name!r} is offered by both {previous.distribution} "
                            f"{previous.version} and {record.distribution} {record.version}",
                            hint=f"Uninstall one of them or disable a plugin with {DISABLE_ENV}.",
                        )
                    self._broken(plugin_name, info.distribution, info.version, info.module,
                                 f"plugin {plugin_name!r} from {info.distribution} {info.version}: {error}", error)
                    continue
                registry[record.name] = record
        self._registries[kind] = dict(sorted(registry.items()))
        return self._registries[kind]

    def components(self, kind: str) -> dict[str, Any]:
        """All components of one kind (``"resource type"``, ``"submitter"``...), by name."""
        return self._registry(kind)

    def get(self, kind: str, name: str) -> Any:
        registry = self._registry(kind)
        key = normalize_name(name)
        if key in registry:
            return registry[key]
        available = ", ".join(registry) or "none"
        provider = KNOWN_PROVIDERS.get(kind, {}).get(key)
        close = difflib.get_close_matches(key, list(registry), n=1)
        hint = f"Install {provider}." if provider else (f"Did you mean {close[0]!r}?" if close else None)
        raise UnknownComponentError(f"Unknown {kind} {name!r}. Available: {available}.", hint=hint)

    def resource_type(self, name: str) -> ResourceType:
        return self.get("resource type", name)  # type: ignore[no-any-return]

    def session_type(self, name: str) -> SessionType:
        return self.get("session type", name)  # type: ignore[no-any-return]

    def submitter(self, name: str) -> SubmitterType:
        return self.get("submitter", name)  # type: ignore[no-any-return]

    def orchestrator(self, name: str) -> OrchestratorType:
        return self.get("orchestrator", name)  # type: ignore[no-any-return]

    def tracers(self) -> list[TracerType]:
        """Tracers in the order they see files."""
        return sorted(self._registry("tracer").values(), key=lambda t: (t.order, t.name))

    def check(self) -> list[dict[str, Any]]:
        """Every plugin and component, imported and validated: the data behind ``plugins --check``.

        One row per component (and per plugin that failed to load); a
        broken one has ``error``, a line saying what is wrong. Make the
        manager with ``strict=False`` so that one broken plugin does not
        hide the others.
        """
        rows: list[dict[str, Any]] = []
        built: dict[str, dict[str, Any]] = {}
        for kind in _HOOKS:
            try:
                built[kind] = self._registry(kind)
            except PluginError as exc:
                rows.append({"kind": kind, "name": None, "distribution": None, "version": None, "factory": None,
                             "error": exc.args[0] if exc.args else str(exc)})
        for failure in self.failures:
            rows.append({"kind": "plugin", "name": failure.name, "distribution": failure.distribution,
                         "version": failure.version, "factory": failure.module,
                         "error": f"plugin {failure.name!r} from {failure.distribution} {failure.version}: "
                                  f"{failure.error}"})
        for info in self.plugins.values():
            module = self.pm.get_plugin(info.name)
            for problem in _hook_name_problems(module):
                rows.append({"kind": "plugin", "name": info.name, "distribution": info.distribution,
                             "version": info.version, "factory": info.module,
                             "error": f"plugin {info.name!r} from {info.distribution} {info.version}: {problem}"})
            offers = any(r.distribution == info.distribution for registry in built.values() for r in registry.values())
            if not offers and not any(f.name == info.name for f in self.failures):
                rows.append({"kind": "plugin", "name": info.name, "distribution": info.distribution,
                             "version": info.version, "factory": info.module,
                             "error": f"plugin {info.name!r} from {info.distribution} {info.version} offers no "
                                      "components: are its hook functions decorated with @hookimpl and named "
                                      "after the hooks (reproman_submitters, reproman_resource_types...)?"})
        for kind, registry in built.items():
            for record in registry.values():
                problems = []
                try:
                    problems += _unimplemented(record.load(), record)
                except PluginError as exc:
                    problems.append(exc.args[0] if exc.args else str(exc))
                problems += [record.describe_problem(p) for p in record.problems() + _core_problems(record)]
                rows.append({"kind": kind, "name": record.name, "distribution": record.distribution,
                             "version": record.version, "factory": record.factory,
                             "error": "; ".join(problems) or None})
        return rows

    def describe(self) -> list[dict[str, Any]]:
        """Plugins with their components, the data behind ``reproman plugins``."""
        for kind in _HOOKS:
            self._registry(kind)
        rows: list[dict[str, Any]] = []
        errors: dict[str, list[str]] = {}
        for failure in self.failures:
            errors.setdefault(failure.name, []).append(failure.error or "broken")
        for info in self.plugins.values():
            components = {
                kind: [r.name for r in self._registries[kind].values() if r.distribution == info.distribution]
                for kind in _HOOKS
            }
            rows.append(
                {
                    "plugin": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "module": info.module,
                    "components": {k: v for k, v in components.items() if v},
                    "error": "; ".join(errors[info.name]) if info.name in errors else None,
                }
            )
        for failure in self.failures:
            if failure.name in self.plugins:
                continue  # registered, then broken: shown in its own row above
            rows.append(
                {
                    "plugin": failure.name,
                    "distribution": failure.distribution,
                    "version": failure.version,
                    "module": failure.module,
                    "components": {},
                    "error": failure.error,
                }
            )
        return rows


def _hook_name_problems(module: object) -> list[str]:
    """``reproman_*`` functions of a registered module that pluggy will never call, and why."""
    import inspect

    from reproman.plugins.markers import hookimpl

    hooks = {name for name in dir(hookspecs.ReproManHookSpecs) if name.startswith("reproman_")}
    marker = f"{hookimpl.project_name}_impl"
    problems = []
    for name in sorted(dir(module)):
        value = getattr(module, name, None)
        if not name.startswith("reproman_") or not inspect.isfunction(value):
            continue
        if name not in hooks:
            close = difflib.get_close_matches(name, sorted(hooks), n=1)
            problems.append(f"{name} is not a ReproMan hook, so it is never called"
                            + (f" (did you mean {close[0]}?)" if close else ""))
        elif not hasattr(value, marker):
            problems.append(f"{name} lacks the @hookimpl decorator, so it is never called")
    return problems


def _unimplemented(cls: object, record: _Component) -> list[str]:
    """The abstract methods a component's class leaves unimplemented (it could not be instantiated)."""
    missing = sorted(getattr(cls, "__abstractmethods__", ()) or ())
    if not missing:
        return []
    return [record.describe_problem(f"its class does not implement {', '.join(missing)} (required by "
                                    f"{record.base.rsplit(':', 1)[-1]})")]


def _core_problems(record: _Component) -> list[str]:
    """Problems only core's own tables can show (a submitter naming job parameters core does not have)."""
    if isinstance(record, SubmitterType):
        from reproman.jobs.parameters import declaration_problems

        return declaration_problems(record)
    return []


_manager: PluginManager | None = None


def session_class(name: str) -> type[Session]:
    """The :class:`~reproman.resources.session.Session` subclass registered as session type ``name``, imported now.

    How a backend reuses another plugin's way of talking to a host without
    importing that plugin: the ``aws-ec2`` backend reaches its instances
    through whatever distribution registers ``ssh``. An unknown name is an
    :class:`~reproman.errors.UnknownComponentError` saying what to install.
    """
    cls: type[Session] = get_plugin_manager().session_type(name).load()
    return cls


def get_plugin_manager() -> PluginManager:
    """The process-wide manager, created on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def reset_plugin_manager() -> None:
    """Forget loaded plugins (tests, or apps that installed plugins at run time)."""
    global _manager
    _manager = None
