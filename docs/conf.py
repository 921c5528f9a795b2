"""Sphinx configuration: the API reference from the docstrings, with the READMEs and the plugin guide.

Built by ``nox -s docs`` with warnings as errors, offline (no intersphinx).
The Markdown documents live where GitHub shows them (README.md, each
package's README.md, docs/plugin-authors.md); ``_generated/`` gets a copy of
each with its links rewritten for the built site, so a link between them
stays a link and a link to a source file becomes its text.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"

#: Repository file -> document name in the built site (relative to docs/).
DOCUMENTS = {
    "README.md": "_generated/readme",
    "docs/plugin-authors.md": "_generated/plugin-authors",
    **{f"{p.name}/README.md": f"_generated/packages/{p.name}" for p in sorted(ROOT.glob("reproman-*"))
       if (p / "README.md").exists()},
}
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _rewrite(text: str, source: str) -> str:
    """Links to other documents point at their copies; links to files become plain text."""
    here = os.path.dirname(source)
    me = DOCUMENTS[source]

    def link(match: re.Match[str]) -> str:
        target = match.group(1)
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo_path = os.path.normpath(os.path.join(here, path))
        if repo_path in DOCUMENTS:
            rel = os.path.relpath(DOCUMENTS[repo_path], os.path.dirname(me)) + ".md"
            return f"]({rel}{'#' + anchor if anchor else ''})"
        return f"]({_FILE_MARK}{repo_path})"

    marked = _LINK.sub(link, text)
    # [text](file:path) -> text: the file is in the repository, not on the site.
    return re.sub(r"\[([^\]]+)\]\(" + re.escape(_FILE_MARK) + r"[^)]*\)", r"\1", marked)


_FILE_MARK = "repository-file:"


def _generate() -> None:
    for source, name in DOCUMENTS.items():
        target = DOCS / f"{name}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = _rewrite((ROOT / source).read_text(encoding="utf-8"), source)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")


#: The classes plugins build on, by kind: documented with the plugin API. A name that
#: ``reproman.plugins`` exports is documented there under that name; the others under their module.
CONTRACTS: dict[str, list[tuple[str, str]]] = {
    "Hook specifications": [("reproman.plugins.hookspecs", "ReproManHookSpecs")],
    "Records": [("reproman.plugins.records", n) for n in
                ("Parameter", "ResourceType", "SessionType", "SubmitterType", "OrchestratorType", "TracerType")],
    "Resources and sessions": [("reproman.resources.base", "Resource"), ("reproman.resources.session", "Session"),
                               ("reproman.resources.session", "CommandResult")],
    "Jobs, submitters and orchestrators": [("reproman.jobs.spec", "JobSpec")] + [
        ("reproman.jobs.contracts", n) for n in
        ("Submitter", "Orchestrator", "State", "FailureReason", "SchedulerState", "SubjobStatus", "Usage")],
    "Tracers": [("reproman.tracing.tracer", n) for n in ("Tracer", "TraceResult", "Comparison", "PackageDifference")],
}
#: Modules with a page of their own: a plugin-API name from there links to it.
OWN_PAGES = {"reproman.errors": "errors"}
MARKERS = {
    "hookimpl": "Marks a function of a plugin's hooks module as the implementation of a hook (pluggy's "
                "``HookimplMarker`` for the ``reproman`` project): ``@hookimpl`` above "
                "``def reproman_resource_types(): ...``.",
    "hookspec": "Marks the hook specifications of ``ReproManHookSpecs``; plugins do not need it.",
}


def _autodoc(target: str, obj: object) -> str:
    import enum
    import inspect

    if inspect.isclass(obj):
        extra = "   :undoc-members:\n" if issubclass(obj, enum.Enum) else ""
        return f".. autoclass:: {target}\n   :members:\n{extra}"
    if inspect.isfunction(obj):
        return f".. autofunction:: {target}\n"
    return f".. autodata:: {target}\n"


def _plugin_api_page() -> str:
    """``reproman.plugins``: everything it exports, then the contracts it does not export (yet)."""
    import importlib

    import reproman.plugins

    exported = {name: getattr(reproman.plugins, name) for name in reproman.plugins.__all__}
    parts = [
        "# `reproman.plugins`: the plugin API\n\n"
        "What plugins import. Names `reproman.plugins` exports come first, under that name; the\n"
        "contracts and records it does not export are documented under their own modules below.\n\n"
        "```{eval-rst}\n.. automodule:: reproman.plugins\n   :no-members:\n\n"
    ]
    for name, obj in exported.items():
        home = getattr(obj, "__module__", "") or ""
        if name in MARKERS:
            parts.append(f".. py:data:: {name}\n   :module: reproman.plugins\n\n   {MARKERS[name]}\n\n")
        elif home in OWN_PAGES:
            parts.append(f".. py:data:: {name}\n   :module: reproman.plugins\n\n"
                         f"   :py:class:`{home}.{name}`, documented with :doc:`../../api/{OWN_PAGES[home]}`.\n\n")
        else:
            parts.append(_autodoc(f"reproman.plugins.{name}", obj) + "\n")
    parts.append("```\n")
    exported_objects = {id(obj) for obj in exported.values()}
    for title, members in CONTRACTS.items():
        rest = [(m, n) for m, n in members if id(getattr(importlib.import_module(m), n)) not in exported_objects]
        if not rest:
            continue
        parts.append(f"\n## {title}\n\n```{{eval-rst}}\n")
        parts += [_autodoc(f"{m}.{n}", getattr(importlib.import_module(m), n)) + "\n" for m, n in rest]
        parts.append("```\n")
    return "".join(parts)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


_generate()
_write(GENERATED / "api" / "plugins.md", _plugin_api_page())

project = "ReproMan"
author = "ReproMan developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_parser"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "plugin-authors.md", "Thumbs.db", ".DS_Store"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}
html_theme = "furo"
html_title = "ReproMan"
# Offline: no intersphinx, nothing fetched.


def _check_coverage(app: object, env: object) -> None:
    """Every name ``reproman.plugins`` exports and every public function of ``reproman.api`` is documented.

    A warning, so ``-W`` fails the build: a name added to the plugin API
    without a docstring page cannot slip through.
    """
    import inspect

    from sphinx.util import logging

    import reproman.api
    import reproman.plugins

    documented = set(env.get_domain("py").objects)  # type: ignore[attr-defined]
    wanted = [f"reproman.plugins.{name}" for name in reproman.plugins.__all__]
    wanted += [f"reproman.api.{name}" for name, obj in vars(reproman.api).items()
               if inspect.isfunction(obj) and obj.__module__ == "reproman.api" and not name.startswith("_")]
    for name in wanted:
        if name not in documented:
            logging.getLogger(__name__).warning("%s is not in the API reference", name)


def setup(app: object) -> None:
    app.connect("env-check-consistency", _check_coverage)  # type: ignore[attr-defined]
