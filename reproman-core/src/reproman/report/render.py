"""The job report as one self-contained HTML file (plotly.js inlined: it opens with no network).

The timeline is a plotly figure built as a plain dict and serialised without
plotly's figure validation, which keeps a 1,000-subjob report well under a
second; everything else is static HTML with inline CSS. All text from the
job (commands, parameters, scheduler words) is escaped: a command such as
``echo '</script>'`` shows as itself.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reproman.report.collect import ReportData, SubjobRow

#: The first bytes of every report: a file that starts otherwise is not overwritten by a new report.
MARKER = "<!DOCTYPE html>\n<!-- ReproMan job report -->"

COLOURS = {
    "queued": "#cfd8dc",
    "running": "#1e88e5",
    "succeeded": "#43a047",
    "failed": "#e53935",
    "cancelled": "#fb8c00",
    "lost": "#6d4c41",
    "unknown": "#8e24aa",
    "pending": "#cfd8dc",
}
#: Failing subjobs listed one by one; the rest are counted.
MAX_FAILURE_ROWS = 200
_HOVER_COMMAND = 160


def _stamp(ts: float | None) -> str:
    """Local time as plotly reads dates (``2024-05-01 10:00:00.123``); '' when unknown."""
    if ts is None:
        return ""
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def _figure_value(key: str, value: Any) -> str:
    """A usage figure in plain units: ``*_bytes`` as KiB/MiB, ``*_s`` as durations."""
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and key.endswith("_bytes"):
        return _bytes(float(value))
    if isinstance(value, (int, float)) and key.endswith("_s"):
        return _duration(float(value))
    return str(value)


def _params_text(params: Mapping[str, Any]) -> str:
    def text(value: Any) -> str:
        return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    return ", ".join(f"{k}={text(v)}" for k, v in params.items())


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _hover(row: SubjobRow, phase: str) -> str:
    """Hover text; plotly draws a few HTML tags, so job text is escaped first."""
    lines = [f"<b>subjob {row.index}</b>: {phase}"]
    if phase != "queued":
        lines.append(f"state: {row.state}" + (f", exit {row.exit_code}" if row.exit_code not in (None, 0) else ""))
    if row.reason and phase != "queued":
        lines.append(f"reason: {html.escape(row.reason)}")
    if row.start is not None:
        lines.append(f"start: {_stamp(row.start)}")
    if row.end is not None and row.start is not None:
        lines.append(f"end: {_stamp(row.end)} ({_duration(row.end - row.start)})")
    if row.params:
        lines.append(html.escape(_short(_params_text(row.params), _HOVER_COMMAND)))
    lines.append(html.escape(_short(row.command, _HOVER_COMMAND)))
    return "<br>".join(lines)


def _bars(name: str, colour: str, rows: Sequence[tuple[SubjobRow, float, float, str]]) -> dict[str, Any]:
    """One horizontal bar trace: a bar per subjob from ``start`` to ``end`` (a date axis wants ms)."""
    return {
        "type": "bar",
        "orientation": "h",
        "name": name,
        "legendgroup": name,
        "y": [row.index for row, _s, _e, _p in rows],
        "base": [_stamp(start) for _r, start, _e, _p in rows],
        "x": [max(1.0, (end - start) * 1000.0) for _r, start, end, _p in rows],
        # Without a width plotly sizes bars by the gap between a trace's rows:
        # two failures 500 subjobs apart would be drawn 500 rows thick.
        "width": 0.8,
        "marker": {"color": colour, "line": {"width": 0}},
        "hovertext": [_hover(row, phase) for row, _s, _e, phase in rows],
        "hoverinfo": "text",
        "hoverlabel": {"align": "left"},
    }


def timeline_figure(data: ReportData) -> dict[str, Any]:
    """Queued, running and finished spans of every subjob, coloured by state (a plotly figure dict)."""
    known = [t for row in data.subjobs for t in (row.start, row.end) if t is not None]
    active = any(row.state in ("pending", "running", "unknown") for row in data.subjobs)
    horizon = data.generated if active or not known else max(known)
    queued_rows: list[tuple[SubjobRow, float, float, str]] = []
    spans: dict[str, list[tuple[SubjobRow, float, float, str]]] = {
        s: [] for s in ("running", "succeeded", "failed", "cancelled", "lost", "unknown")}
    starts_only: list[SubjobRow] = []
    for row in data.subjobs:
        began = row.start if row.start is not None else horizon
        if data.queued is not None and began > data.queued:
            queued_rows.append((row, data.queued, began, "queued"))
        if row.start is None:
            continue
        if row.end is not None:
            spans.get(row.category, spans["unknown"]).append((row, row.start, row.end, row.category))
        elif row.state == "running":
            spans["running"].append((row, row.start, max(horizon, row.start), "running"))
        else:
            starts_only.append(row)  # killed before it could write its end, and no accounting
    traces = [_bars("queued", COLOURS["queued"], queued_rows)] if queued_rows else []
    traces += [_bars(state, COLOURS[state], rows) for state, rows in spans.items() if rows]
    if spans["failed"]:
        # A failure a few milliseconds long is a hairline bar among long ones: mark its end too.
        traces.append({
            "type": "scatter", "mode": "markers", "name": "failed", "legendgroup": "failed", "showlegend": False,
            "x": [_stamp(end) for _r, _s, end, _p in spans["failed"]], "y": [r.index for r, _s, _e, _p in spans["failed"]],
            "marker": {"symbol": "x-thin", "size": 8, "line": {"width": 2, "color": COLOURS["failed"]}},
            "hovertext": [_hover(r, "failed") for r, _s, _e, _p in spans["failed"]], "hoverinfo": "text",
        })
    if starts_only:
        traces.append({
            "type": "scatter", "mode": "markers", "name": "started, end unknown",
            "x": [_stamp(r.start) for r in starts_only], "y": [r.index for r in starts_only],
            "marker": {"symbol": "triangle-right", "size": 9, "color": COLOURS.get(starts_only[0].state, "#555")},
            "hovertext": [_hover(r, "started (end unknown)") for r in starts_only], "hoverinfo": "text",
        })
    n = len(data.subjobs)
    height = max(320, min(4000, 140 + 7 * n))
    tall = n > 40
    # An explicit range (subjob 0 on top): autorange pads for markers and bars unevenly.
    yaxis: dict[str, Any] = {"title": {"text": "subjob"}, "range": [n - 0.5, -0.5], "zeroline": False}
    if not tall:
        yaxis.update(tickmode="array", tickvals=[r.index for r in data.subjobs],
                     ticktext=[str(r.index) for r in data.subjobs])
    top = 100 if tall else 40  # a tall timeline has its time axis on top, where the reader starts
    return {
        "data": traces,
        "layout": {
            "barmode": "overlay",
            "height": height,
            "margin": {"l": 60, "r": 20, "t": top, "b": 50},
            "xaxis": {"type": "date", "title": {"text": "time (local)"}, "showgrid": True,
                      "side": "top" if tall else "bottom"},
            "yaxis": yaxis,
            "legend": {"orientation": "h", "x": 0, "yanchor": "bottom", "y": 1 + (top - 25) / (height - top - 50)},
            "hovermode": "closest",
            "plot_bgcolor": "#ffffff",
        },
    }


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _facts(data: ReportData) -> str:
    job = data.job
    resource = f"{job.resource_name} ({job.resource_type})"
    submitter = job.submitter + (f" (submission id {job.submission_id})" if job.submission_id else "")
    rows = [
        ("command", job.command),
        ("resource", resource),
        ("submitter", submitter),
        ("orchestrator", job.orchestrator),
        ("submitted", job.created),
        ("working directory", job.working_directory),
        ("job directory", job.job_dir),
        ("job parameters", _params_text(job.parameters) or "none"),
    ]
    if job.message:
        rows.insert(1, ("message", job.message))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _badges(data: ReportData) -> str:
    parts = []
    for state, count in data.counts().items():
        if count:
            colour = COLOURS.get(state, "#555")
            parts.append(f'<span class="badge" style="background:{colour}">{count} {html.escape(state)}</span>')
    return " ".join(parts) or "no subjobs"


def _failures(data: ReportData) -> str:
    failing = [row for row in data.subjobs if row.state == "failed"]
    if not failing:
        return "<p>No subjob failed.</p>"
    by_reason: dict[str, int] = {}
    for row in failing:
        by_reason[row.reason or "failed"] = by_reason.get(row.reason or "failed", 0) + 1
    summary = "; ".join(f"{html.escape(reason)}: {count}" for reason, count in sorted(by_reason.items()))
    shown = failing[:MAX_FAILURE_ROWS]
    table = _table(
        ["subjob", "reason", "exit code", "detail", "parameters", "command", "stderr"],
        ([row.index, row.reason or "-", "-" if row.exit_code is None else row.exit_code, row.detail or "",
          _params_text(row.params), row.command, row.stderr or ""] for row in shown),
        "failures",
    )
    more = f"<p>… and {len(failing) - len(shown)} more failing subjobs.</p>" if len(failing) > len(shown) else ""
    return f"<p>{len(failing)} failed ({summary}).</p>{table}{more}"


_USAGE_ORDER = ("node", "elapsed_s", "cpu_s", "max_rss_bytes")


def _usage(data: ReportData) -> str:
    rows = [row for row in data.subjobs if row.usage]
    if not rows:
        note = data.usage_note or "unavailable"
        return f'<p class="muted">{html.escape(note[:1].upper() + note[1:])}.</p>'
    keys = [k for k in _USAGE_ORDER if any(k in (r.usage or {}) for r in rows)]
    keys += sorted({k for r in rows for k in (r.usage or {})} - set(keys))
    totals = []
    # A subjob that traced its node's environment used more than its command did: it is left out
    # of the totals (which size the next --jp memory/walltime) unless nothing else has figures.
    counted = [r for r in rows if not r.captured] or rows
    for key, label, combine in (("elapsed_s", "total elapsed", sum), ("cpu_s", "total CPU time", sum),
                                ("max_rss_bytes", "largest peak RSS", max)):
        values = [float(r.usage[key]) for r in counted if r.usage and isinstance(r.usage.get(key), (int, float))]
        if values:
            totals.append(f"{label}: {html.escape(_figure_value(key, combine(values)))}")
    nodes = sorted({str(r.usage.get("node")) for r in rows if r.usage and r.usage.get("node")})
    if nodes:
        totals.append(f"nodes: {html.escape(', '.join(nodes[:20]))}" + (" …" if len(nodes) > 20 else ""))
    table = _table(["subjob", *keys], ([f"{r.index} *" if r.captured else r.index,
                                        *(_figure_value(k, (r.usage or {}).get(k)) for k in keys)] for r in rows))
    traced = [r.index for r in rows if r.captured]
    note = (f" Subjob{'s' if len(traced) > 1 else ''} {', '.join(map(str, traced))} (*) traced the node's "
            f"environment for ReproMan while the command ran; {'their' if len(traced) > 1 else 'its'} figures "
            "include that"
            + (" and are left out of the totals." if len(counted) < len(rows) else ".")) if traced else ""
    return (f"<p>{len(rows)} of {len(data.subjobs)} subjobs have accounting figures. {'; '.join(totals)}."
            f"{html.escape(note)}</p><details><summary>Per subjob</summary>{table}</details>")


def _subjob_table(data: ReportData) -> str:
    rows = (
        [row.index, row.state, "-" if row.exit_code is None else row.exit_code, _stamp(row.start) or "-",
         _stamp(row.end) or "-",
         _duration(row.end - row.start) if row.start is not None and row.end is not None else "-",
         _params_text(row.params)]
        for row in data.subjobs
    )
    return _table(["subjob", "state", "exit", "start", "end", "duration", "parameters"], rows)


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 6px; } h2 { font-size: 16px; margin: 28px 0 8px; }
table { border-collapse: collapse; margin: 6px 0; } td, th { padding: 3px 8px; vertical-align: top; text-align: left; }
table.facts th { color: #555; font-weight: 600; white-space: nowrap; }
thead th { border-bottom: 1px solid #bbb; } tbody tr:nth-child(even) { background: #f6f7f8; }
td { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12.5px; overflow-wrap: anywhere; }
.badge { color: #fff; border-radius: 10px; padding: 2px 10px; font-weight: 600; }
.muted, .notes { color: #666; } details { margin: 8px 0; } summary { cursor: pointer; }
#timeline { width: 100%; }
"""


def render_html(data: ReportData) -> str:
    """The report page; ``plotly`` (the ``report`` extra) is imported here and only here."""
    import plotly.io

    figure = timeline_figure(data)
    plot = plotly.io.to_html(
        figure, include_plotlyjs=True, full_html=False, validate=False, div_id="timeline",
        default_height=f"{figure['layout']['height']}px",
        config={"displaylogo": False, "responsive": True},
    )
    job = data.job
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in data.notes)
    generated = datetime.datetime.fromtimestamp(data.generated).isoformat(timespec="seconds")
    title = f"ReproMan job {job.jobid}"
    return f"""{MARKER}
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{_badges(data)}</p>
{_facts(data)}
<p class="muted">States and times from {html.escape(data.source)}; report made {html.escape(generated)}.</p>
{f'<ul class="notes">{notes}</ul>' if notes else ''}
<h2>Timeline</h2>
<p class="muted">Each row is a subjob: queued from submission until it started, then running until it ended,
coloured by how it ended. Hover for its parameters and command.</p>
{plot}
<h2>Failures</h2>
{_failures(data)}
<h2>Resource usage</h2>
{_usage(data)}
<h2>Subjobs</h2>
<details><summary>All {len(data.subjobs)} subjobs</summary>{_subjob_table(data)}</details>
</body>
</html>
"""
