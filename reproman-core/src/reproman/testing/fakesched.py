#!/usr/bin/env python3
"""Fake PBS (Pro and Torque), HTCondor and LSF command-line tools for the tests.

NOT a scheduler: a stand-in that behaves, on the command line, as the real
tools document (``qsub``/``qstat -f``/``qdel``, ``condor_submit -terse``/
``condor_q -json``/``condor_rm``, ``bsub``/``bjobs -o``/``bkill``), so the
submitters can be tested where those schedulers cannot be installed. It

* checks every directive of the submission script (and the command line)
  against the syntax the scheduler accepts, failing like the real tool;
* really runs the script once per array index in a detached process, with
  the scheduler's environment variables, so status files appear;
* answers the status commands in the real output formats, including array
  parents, finished jobs and unknown ids;
* remembers finished jobs the way each scheduler does, and forgets them the
  same way:

  - PBS Pro: ``qstat -x`` shows finished jobs (``F``, subjobs ``X``) only
    while the server keeps job history (``job_history_enable``); a finished
    job is otherwise "Unknown Job Id". Deleted running jobs end with
    ``Exit_status`` 256 + signal (271 for SIGTERM).
  - Torque: finished jobs stay as ``C`` for ``keep_completed`` seconds, then
    are unknown.
  - HTCondor: completed and removed (``condor_rm``) jobs leave the queue at
    once and are found with ``condor_history`` (``JobStatus`` 4 with
    ``ExitCode``/``ExitBySignal``, or 3 with ``RemoveReason``).
  - LSF: ``bjobs -a`` shows ``DONE``/``EXIT`` jobs for ``CLEAN_PERIOD``,
    then says "Job <N> is not found".

  ``FAKE_SCHED_FORGET_AFTER=SECONDS`` sets that retention (PBS history,
  ``keep_completed``, ``CLEAN_PERIOD``; unset: kept for the whole test),
  and ``qstat -B -f`` (``job_history_duration``, ``keep_completed``) and
  ``bparams -a`` (``CLEAN_PERIOD``) report it; ``FAKE_PBS_HISTORY=0`` is a
  PBS Pro server without ``job_history_enable``; ``FAKE_CONDOR_HISTORY=0``
  is an HTCondor history that no longer holds anything, ``=unreadable`` one
  that ``condor_history`` cannot read;
* finds jobs by name as the documented lookups do: ``qselect [-x] -N NAME``,
  ``bjobs -a -J PATTERN`` (with the ``job_name`` field), ``condor_q`` and
  ``condor_history`` with ``-constraint 'Attr == "value" && ...'`` (custom
  ``+Attr`` submit commands become attributes), ``-af`` and ``-limit``;
* refuses to start requests no node can satisfy, as the schedulers document:
  PBS Pro leaves them queued with the comment "Can Never Run: Insufficient
  amount of resource", LSF pending with "Not enough processors to meet the
  job's spanning requirement"; a node has ``FAKE_NODE_CPUS`` CPUs (8).

Invoked as ``fakesched.py TOOL ARGS...`` by small wrappers named after the
tools (``qselect`` and ``bparams`` too). State lives in ``$FAKE_SCHED_STATE``; ``FAKE_SCHED_HOLD=1`` keeps new
jobs queued (nothing runs) so tests can see pending states and cancel;
``FAKE_PBS_FLAVOR`` is ``pro`` (default) or ``torque``.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

STATE = Path(os.environ.get("FAKE_SCHED_STATE", "/tmp/fakesched"))
SERVER = "fakeserver"


def die(message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.exit(code)


@contextmanager
def locked() -> Iterator[None]:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def load(jid: str) -> dict[str, Any] | None:
    path = STATE / f"{jid}.json"
    return json.loads(path.read_text()) if path.exists() else None


def save(job: dict[str, Any]) -> None:
    path = STATE / f"{job['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(job))
    tmp.replace(path)


def new_id() -> str:
    counter = STATE / "counter"
    value = int(counter.read_text()) + 1 if counter.exists() else 100
    counter.write_text(str(value))
    return str(value)


def node_cpus() -> int:
    return int(os.environ.get("FAKE_NODE_CPUS", "8"))


def create(kind: str, count: int, array: bool, env: dict[str, str], argv: list[str], options: dict[str, Any],
           first: int = 0, never: str = "") -> dict[str, Any]:
    """Record a job with ``count`` elements and start running it unless held (or it can ``never`` run)."""
    with locked():
        jid = new_id()
        job = {
            "id": jid, "kind": kind, "array": array, "argv": argv, "env": env, "options": options,
            "elements": {str(first + i): {"state": "queued", "exit": None, "reason": "", "signal": None}
                         for i in range(count)},
            "runner": None, "never": never,
        }
        save(job)
    (STATE / f"{jid}.options.json").write_text(json.dumps(options))
    if os.environ.get("FAKE_SCHED_HOLD") != "1" and not never:
        proc = subprocess.Popen(
            [sys.executable, __file__, "_run", jid], start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with locked():
            job = load(jid) or job
            job["runner"] = proc.pid
            save(job)
    return job


def run_elements(jid: str) -> None:
    """The detached runner: each element in turn, state queued -> running -> done."""
    job = load(jid)
    assert job is not None
    for index in list(job["elements"]):
        with locked():
            job = load(jid)
            assert job is not None
            if job["elements"][index]["state"] != "queued":
                continue
            job["elements"][index]["state"] = "running"
            save(job)
        env = {**os.environ, **job["env"]}
        env.update(element_env(job, int(index)))
        argv = [a.replace("$(Process)", index) for a in job["argv"]]
        stdin = open(job["options"]["stdin_file"]) if job["options"].get("stdin_file") else subprocess.DEVNULL
        started = time.time()
        rc = subprocess.call(argv, env=env, cwd=job["options"].get("cwd") or None, stdin=stdin,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with locked():
            job = load(jid)
            assert job is not None
            element = job["elements"][index]
            if element["state"] == "running":
                element["state"], element["ended"] = "done", time.time()
                element["wall"] = element["ended"] - started
                # A process killed by a signal: the shell convention, and the signal kept.
                element["exit"], element["signal"] = (128 - rc, -rc) if rc < 0 else (rc, None)
                save(job)


def element_env(job: dict[str, Any], index: int) -> dict[str, str]:
    kind = job["kind"]
    if kind == "pbs-pro" and job["array"]:
        return {"PBS_ARRAY_INDEX": str(index), "PBS_JOBID": f"{job['id']}[{index}].{SERVER}"}
    if kind == "pbs-torque" and job["array"]:
        return {"PBS_ARRAYID": str(index), "PBS_JOBID": f"{job['id']}[{index}].{SERVER}"}
    if kind == "lsf":
        return {"LSB_JOBID": job["id"], "LSB_JOBINDEX": str(index if job["array"] else 0)}
    return {}


def kill(jid: str, queued_reason: str, running_reason: str, running_exit: int) -> bool:
    """Cancel a job's elements; False when it had finished already."""
    with locked():
        job = load(jid)
        if job is None or forgotten(job):
            return False
        live = False
        for element in job["elements"].values():
            if element["state"] == "queued":
                element.update(state="cancelled", reason=queued_reason, ended=time.time())
                live = True
            elif element["state"] == "running":
                element.update(state="cancelled", exit=running_exit, reason=running_reason, ended=time.time(),
                               ran=True)
                live = True
        save(job)
    if job.get("runner"):
        try:
            os.killpg(job["runner"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    return live


def finished(job: dict[str, Any]) -> bool:
    return all(e["state"] in ("done", "cancelled") for e in job["elements"].values())


def forgotten(job: dict[str, Any], retention: float | None = None) -> bool:
    """A finished job older than the retention (``FAKE_SCHED_FORGET_AFTER``) is gone from the scheduler."""
    if retention is None:
        text = os.environ.get("FAKE_SCHED_FORGET_AFTER")
        if text is None:
            return False
        retention = float(text)
    if not finished(job):
        return False
    last = max((e.get("ended") or 0.0) for e in job["elements"].values())
    return time.time() - last >= retention


# -- PBS -----------------------------------------------------------------------------------

PBS_SELECT = re.compile(r"^select=\d+:ncpus=\d+(:mem=\d+[kmg]?b)?(:ngpus=\d+)?$")
TORQUE_NODES = re.compile(r"^nodes=\d+:ppn=\d+(:gpus=\d+)?(,mem=\d+[kmg]?b)?$")
WALLTIME = re.compile(r"^walltime=\d+:\d\d:\d\d$")


def pbs_flavor() -> str:
    return os.environ.get("FAKE_PBS_FLAVOR", "pro")


def directive_words(text: str, prefix: str) -> list[str]:
    words: list[str] = []
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            words += shlex.split(line[len(prefix) + 1:])
        elif line.strip() and not line.startswith("#"):
            break  # like qsub/bsub: directives end at the first command
    return words


def qsub(args: list[str]) -> None:
    flavor = pbs_flavor()
    script = args[-1] if args else die("usage: qsub [options] script")
    if not os.path.isfile(script):
        die(f"qsub: script file:: No such file or directory: {script}", 2)
    words = directive_words(Path(script).read_text(), "#PBS") + args[:-1]
    options: dict[str, Any] = {"resources": [], "vars": {}, "directives": words}
    array = None
    i = 0
    while i < len(words):
        flag = words[i]
        value = words[i + 1] if i + 1 < len(words) else die(f"qsub: option requires an argument -- {flag}", 2)
        i += 2
        if flag == "-l":
            for res in value.split(",") if flavor == "pro" or value.startswith("walltime") else [value]:
                ok = WALLTIME.match(res) or (PBS_SELECT.match(res) if flavor == "pro" else TORQUE_NODES.match(res))
                if not ok:
                    die(f"qsub: Illegal attribute or resource value Resource_List.{res}", 2)
                options["resources"].append(res)
        elif flag == "-J" and flavor == "pro" or flag == "-t" and flavor == "torque":
            m = re.match(r"^(\d+)-(\d+)(?:%(\d+))?$", value)
            if not m or (flavor == "pro" and int(m.group(1)) >= int(m.group(2))):
                die(f"qsub: illegal {flag} value", 2)
            array = (int(m.group(1)), int(m.group(2)))
            options["throttle"] = m.group(3)
        elif flag == "-v":
            for item in value.split(","):
                key, _, val = item.partition("=")
                options["vars"][key] = val
        elif flag == "-W":
            if not re.match(r"^depend=(afterany|afteranyarray):\d+(\[\])?\.\S+$", value):
                die(f"qsub: illegal -W value {value}", 2)
            options["depend"] = value
        elif flag in ("-N", "-j", "-o", "-q", "-A"):
            options[flag] = value
        else:
            die(f"qsub: invalid option -- '{flag.lstrip('-')}'", 2)
    options["cwd"] = os.getcwd()
    count = array[1] - array[0] + 1 if array else 1
    never = ""
    asked = max([int(m) for r in options["resources"] for m in re.findall(r"(?:ncpus|ppn)=(\d+)", r)] or [1])
    if asked > node_cpus():
        # PBS Pro's scheduler comment for a request no node can meet (Torque just leaves it queued).
        never = (f"Can Never Run: Insufficient amount of resource: ncpus (R: {asked} A: {node_cpus()} "
                 f"T: {node_cpus()})") if flavor == "pro" else " "
    job = create(f"pbs-{flavor}", count, array is not None, options["vars"], ["/bin/sh", script], options,
                 first=array[0] if array else 0, never=never)
    print(f"{job['id']}[].{SERVER}" if array else f"{job['id']}.{SERVER}")


def pbs_record(job: dict[str, Any], index: str | None, element: dict[str, Any], flavor: str) -> str:
    name = f"{job['id']}[{index}].{SERVER}" if index is not None else f"{job['id']}.{SERVER}"
    state = element["state"]
    done = "F" if flavor == "pro" else "C"
    letter = {"queued": "Q", "running": "R", "done": done, "cancelled": done}[state]
    if flavor == "pro" and index is not None and letter == "F":
        letter = "X"
    lines = [f"Job Id: {name}", f"    Job_Name = {job['options'].get('-N', 'STDIN')}",
             "    Job_Owner = user@host", f"    job_state = {letter}", f"    queue = {job['options'].get('-q', 'workq')}"]
    if element.get("exit") is not None:
        key = "Exit_status" if flavor == "pro" else "exit_status"
        # PBS reports a job killed by signal N as 256 + N.
        code = 256 + element["signal"] if element.get("signal") else element["exit"]
        lines.append(f"    {key} = {code}")
    if element.get("reason"):
        lines.append(f"    comment = {element['reason']}")
    elif state == "queued" and job.get("never", "").strip():
        lines.append(f"    comment = {job['never']}")
    if state == "done" or element.get("ran"):
        wall = int(element.get("wall") or 0)
        lines += [f"    resources_used.cput = 00:00:{min(wall, 59):02d}", "    resources_used.mem = 3904kb",
                  f"    resources_used.walltime = 00:00:{min(wall, 59):02d}", "    exec_host = fakenode/0"]
    if index is not None:
        lines.append(f"    {'array_index' if flavor == 'pro' else 'job_array_id'} = {index}")
    lines.append("    Variable_List = PBS_O_HOME=/root,PBS_O_LANG=C.UTF-8,PBS_O_LOGNAME=root,PBS_O_PATH=/usr/bin:/b\n"
                 "\tin,PBS_O_SHELL=/bin/sh")
    return "\n".join(lines) + "\n"


def pbs_retention() -> float | None:
    """How long the fake PBS server keeps finished jobs: ``FAKE_PBS_HISTORY=0`` (PBS Pro) keeps none."""
    if pbs_flavor() == "pro" and os.environ.get("FAKE_PBS_HISTORY") == "0":
        return 0.0
    return None


def pbs_server() -> None:
    """``qstat -B -f``: the server's attributes, with how long it keeps finished jobs."""
    kept = os.environ.get("FAKE_SCHED_FORGET_AFTER")
    lines = [f"Server: {SERVER}", "    server_state = Active"]
    if pbs_flavor() == "torque":
        lines.append(f"    keep_completed = {int(float(kept)) if kept else 86400}")
    elif os.environ.get("FAKE_PBS_HISTORY") != "0":
        lines.append("    job_history_enable = True")
        if kept:
            seconds = int(float(kept))
            lines.append(f"    job_history_duration = {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}")
    print("\n".join(lines) + "\n")


def qselect(args: list[str]) -> None:
    """``qselect [-x] [-N NAME] [-u USER]``: ids of this server's jobs, arrays as ``N[].server``.

    PBS Pro lists finished jobs (kept as history) only with ``-x``; Torque
    lists them (state C) while it keeps them.
    """
    flavor = pbs_flavor()
    if "-x" in args and flavor == "torque":
        die("qselect: invalid option -- 'x'", 2)
    name = args[args.index("-N") + 1] if "-N" in args else None
    for job in all_jobs("pbs"):
        if name is not None and job["options"].get("-N") != name:
            continue
        if forgotten(job, pbs_retention()) or (flavor == "pro" and finished(job) and "-x" not in args):
            continue
        print(f"{job['id']}[].{SERVER}" if job["array"] else f"{job['id']}.{SERVER}")


def qstat(args: list[str]) -> None:
    flavor = pbs_flavor()
    flags = [a for a in args if a.startswith("-")]
    if "-B" in flags:
        return pbs_server()
    if "-f" not in flags:
        die("fake qstat supports only -f output", 2)
    history = "-x" in flags
    if "-x" in flags and flavor == "torque":
        die("fake qstat: -x (XML) not supported", 2)
    out: list[str] = []
    rc = 0
    for ref in (a for a in args if not a.startswith("-")):
        jid = re.match(r"^(\d+)", ref)
        job = load(jid.group(1)) if jid else None
        if job is None or forgotten(job, pbs_retention()):
            sys.stderr.write(f"qstat: Unknown Job Id {ref}\n")
            rc = 153
            continue
        elements = job["elements"]
        finished = all(e["state"] in ("done", "cancelled") for e in elements.values())
        if flavor == "pro" and finished and not history:
            sys.stderr.write(f"qstat: {ref} Job has finished, use -x or -H to obtain historical job information\n")
            rc = 35
            continue
        if not job["array"]:
            out.append(pbs_record(job, None, elements["0"], flavor))
            continue
        if flavor == "pro":
            parent = {"state": "done" if finished else "running", "exit": None, "reason": ""}
            rec = pbs_record(job, "", parent, flavor).replace("job_state = X", "job_state = F")
            if not finished:
                rec = rec.replace("job_state = R", "job_state = B")
            rec = rec.replace("    array_index = \n", "    array = True\n")
            out.append(rec)
        if "-t" in flags:
            for index, element in elements.items():
                out.append(pbs_record(job, index, element, flavor))
    sys.stdout.write("\n".join(out))
    sys.exit(rc)


def qdel(args: list[str]) -> None:
    rc = 0
    for ref in args:
        jid = re.match(r"^(\d+)", ref)
        if not jid or load(jid.group(1)) is None:
            sys.stderr.write(f"qdel: Unknown Job Id {ref}\n")
            rc = 153
        elif not kill(jid.group(1), "Job deleted by user", "Job deleted by user", 271):
            sys.stderr.write(f"qdel: Job has finished {ref}\n")
            rc = 35
    sys.exit(rc)


# -- HTCondor ---------------------------------------------------------------------------------

CONDOR_KEYS = {
    "universe", "executable", "arguments", "transfer_executable", "should_transfer_files", "initialdir",
    "batch_name", "log", "output", "error", "request_memory", "request_cpus", "request_gpus",
    "allowed_execute_duration", "accounting_group", "max_materialize", "requirements", "+projectname",
    "+repromanjob",
}


def condor_arguments(value: str) -> list[str]:
    """The "new" arguments syntax: whole value in double quotes, args in single quotes, '' and "" escapes."""
    if not (value.startswith('"') and value.endswith('"')):
        return value.split()
    text = value[1:-1].replace('""', '"')
    args: list[str] = []
    i, cur, quoted, started = 0, "", False, False
    while i < len(text):
        ch = text[i]
        if ch == "'":
            if quoted and text[i + 1:i + 2] == "'":
                cur += "'"
                i += 2
                continue
            quoted, started = not quoted, True
        elif ch.isspace() and not quoted:
            if started:
                args.append(cur)
            cur, started = "", False
        else:
            cur += ch
            started = True
        i += 1
    if started:
        args.append(cur)
    return args


def condor_submit(args: list[str]) -> None:
    if "-terse" not in args:
        die("fake condor_submit expects -terse", 2)
    path = [a for a in args if not a.startswith("-")][-1]
    submit: dict[str, str] = {}
    count: int | None = None
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("queue"):
            count = int(line.split()[1]) if len(line.split()) > 1 else 1
            continue
        key, sep, value = line.partition("=")
        if not sep:
            die(f"ERROR: on Line: {line}: parse error", 1)
        key = key.strip().lower()
        if key not in CONDOR_KEYS:
            die(f"ERROR: unknown submit command {key}", 1)
        submit[key] = value.strip()
    if count is None:
        die("ERROR: no queue statement", 1)
    for key in ("request_memory", "request_cpus", "request_gpus", "allowed_execute_duration", "max_materialize"):
        if key in submit and not submit[key].isdigit():
            die(f"ERROR: {key} = {submit[key]} is not an integer", 1)
    argv = [submit.get("executable", "/bin/sh"), *condor_arguments(submit.get("arguments", ""))]
    options = {"submit": submit, "cwd": submit.get("initialdir")}
    job = create("condor", count, True, {}, argv, options)
    print(f"{job['id']}.0 - {job['id']}.{count - 1}")


def condor_attributes(args: list[str]) -> set[str] | None:
    """The ``-attributes a,b,c`` projection (None: all), as condor_q and condor_history take it."""
    if "-attributes" not in args:
        return None
    return set(args[args.index("-attributes") + 1].split(","))


def condor_ads(args: list[str], history: bool) -> list[dict[str, Any]]:
    """Queue ads (idle 1, running 2) or history ads (completed 4, removed 3), projected."""
    wanted = condor_attributes(args)
    if "-af" in args:
        wanted = set(args[args.index("-af") + 1:])
    clusters = [a for a in args if a.isdigit() and args[args.index(a) - 1] not in ("-limit", "-af")]
    match = condor_constraint(args[args.index("-constraint") + 1]) if "-constraint" in args else None
    if match is not None and not clusters:
        clusters = [job["id"] for job in all_jobs("condor")]
    ads = []
    for cluster in clusters:
        job = load(cluster)
        if job is None:
            continue
        custom = {key[1:]: value.strip('"') for key, value in job["options"]["submit"].items() if key[0] == "+"}
        for index, element in job["elements"].items():
            state = element["state"]
            in_queue = state in ("queued", "running")
            if in_queue == history:
                continue  # completed and removed jobs leave the queue for the history
            ad: dict[str, Any] = {"ClusterId": int(cluster), "ProcId": int(index),
                                  "JobStatus": {"queued": 1, "running": 2, "done": 4, "cancelled": 3}[state]}
            if state == "cancelled":
                ad["RemoveReason"] = "via condor_rm (by user root)"
            if state == "done":
                ad["ExitBySignal"] = bool(element.get("signal"))
                if element.get("signal"):
                    ad["ExitSignal"] = element["signal"]
                else:
                    ad["ExitCode"] = element["exit"]
            if state == "done" or element.get("ran"):
                ad.update(RemoteWallClockTime=float(int(element.get("wall") or 0)), RemoteUserCpu=0.0,
                          RemoteSysCpu=0.0, ResidentSetSize=3904, LastRemoteHost="slot1@fakenode")
            if match is not None and not match({**{k.lower(): v for k, v in custom.items()},
                                                **{k.lower(): v for k, v in ad.items()}}):
                continue
            ads.append({k: v for k, v in ad.items() if wanted is None or k in wanted})
    if "-limit" in args:
        ads = ads[-int(args[args.index("-limit") + 1]):][::-1]  # the history is read newest first
    return ads


def condor_constraint(text: str) -> Any:
    """A ClassAd constraint of ``Attr == value`` terms joined by ``&&`` (the subset ReproMan writes), as a test.

    Attribute names are case-insensitive, as in ClassAds; anything else is refused.
    """
    terms = []
    for term in text.split("&&"):
        m = re.match(r'^\s*([A-Za-z_]\w*)\s*==\s*("[^"]*"|\d+)\s*$', term)
        if not m:
            die(f"fake condor: unsupported constraint {text!r}", 2)
        terms.append((m.group(1).lower(), m.group(2).strip('"') if m.group(2).startswith('"') else int(m.group(2))))
    return lambda ad: all(name in ad and ad[name] == value for name, value in terms)


def condor_print(ads: list[dict[str, Any]], args: list[str]) -> None:
    """``-json`` (an array of ads) or ``-af A B`` (their values, one ad a line)."""
    if "-af" in args:
        attrs = args[args.index("-af") + 1:]
        for ad in ads:
            print(" ".join(str(ad.get(a, "undefined")) for a in attrs))
    elif ads:
        print(json.dumps(ads, indent=2))


def condor_q(args: list[str]) -> None:
    if "-json" not in args and "-af" not in args:
        die("fake condor_q supports only -json and -af", 2)
    condor_print(condor_ads(args, history=False), args)


def condor_history(args: list[str]) -> None:
    if "-json" not in args and "-af" not in args:
        die("fake condor_history supports only -json and -af", 2)
    if os.environ.get("FAKE_CONDOR_HISTORY") == "unreadable":
        die("Error: No history file is defined", 1)  # HISTORY unset in the schedd's configuration
    if os.environ.get("FAKE_CONDOR_HISTORY") == "0":
        return  # history rotated away: nothing is ever found
    condor_print(condor_ads(args, history=True), args)


def condor_rm(args: list[str]) -> None:
    rc = 0
    for cluster in args:
        if load(cluster) is None or not kill(cluster, "removed", "removed", 143):
            sys.stderr.write(f"Couldn't find/remove all jobs in cluster {cluster}\n")
            rc = 1
        else:
            print(f"All jobs in cluster {cluster} have been marked for removal")
    sys.exit(rc)


# -- LSF ------------------------------------------------------------------------------------------

def bsub(args: list[str]) -> None:
    if sys.stdin.isatty():
        die("fake bsub reads the job script from stdin", 2)
    text = sys.stdin.read()
    script = STATE / f"bsub-{os.getpid()}.sh"
    STATE.mkdir(parents=True, exist_ok=True)
    script.write_text(text)
    words = directive_words(text, "#BSUB") + args
    options: dict[str, Any] = {"directives": words, "stdin_file": str(script), "R": []}
    array = None
    i = 0
    while i < len(words):
        flag, value = words[i], words[i + 1] if i + 1 < len(words) else ""
        i += 2
        if flag == "-J":
            m = re.match(r"^[^\[\]]+(?:\[(\d+)-(\d+)\](?:%(\d+))?)?$", value)
            if not m:
                die(f"{value}: Bad job name. Job not submitted.", 255)
            if m.group(1):
                array = (int(m.group(1)), int(m.group(2)))
                if array[0] < 1:
                    die("Job array index must be greater than 0. Job not submitted.", 255)
                options["throttle"] = m.group(3)
            options["-J"] = value
        elif flag in ("-M",):
            if not re.match(r"^\d+[KMGT]B$", value):
                die(f"{value}: Bad memory limit. Job not submitted.", 255)
            options[flag] = value
        elif flag == "-W":
            if not re.match(r"^(\d+:)?\d+$", value):
                die(f"{value}: Bad RUNLIMIT specification. Job not submitted.", 255)
            options[flag] = value
        elif flag == "-R":
            for usage in re.findall(r"rusage\[([^\]]*)\]", value):
                # LSF 10.1.0.9: mem=VALUE[UNIT][/job|/host|/task], sections separated by ':'.
                if not all(re.match(r"^mem=\d+(KB|MB|GB|TB)?(/(job|host|task))?$", part)
                           for part in usage.split(":")):
                    die(f"{value}: Bad resource requirement syntax. Job not submitted.", 255)
            options["R"].append(value)
        elif flag in ("-n", "-o", "-q", "-P", "-cwd", "-w", "-gpu"):
            options[flag] = value
        else:
            die(f"bsub: illegal option -- {flag.lstrip('-')}", 255)
    options["cwd"] = options.get("-cwd") or os.getcwd()
    env = {"REPROMAN_OFFSET": os.environ.get("REPROMAN_OFFSET", "0")}
    count = array[1] - array[0] + 1 if array else 1
    slots = int(options.get("-n") or 1)
    never = ""
    if slots > node_cpus() and any("span[hosts=1]" in r for r in options["R"]):
        never = "Not enough processors to meet the job's spanning requirement: 1 host;"
    job = create("lsf", count, array is not None, env, ["/bin/sh"], options, first=array[0] if array else 0,
                 never=never)
    queue = options.get("-q")
    print(f"Job <{job['id']}> is submitted to queue <{queue}>." if queue
          else f"Job <{job['id']}> is submitted to default queue <normal>.")


def bjobs(args: list[str]) -> None:
    if "-o" not in args:
        die("fake bjobs supports only -o", 2)
    fmt = args[args.index("-o") + 1]
    if "delimiter='|'" not in fmt:
        die("fake bjobs expects delimiter='|'", 2)
    fields = fmt.replace("delimiter='|'", "").split()
    ids = [a for a in args if a.isdigit()]
    pattern = args[args.index("-J") + 1] if "-J" in args else None
    if pattern is not None and not ids:
        # -J NAME: this user's jobs whose name (an array element's is NAME[INDEX]) matches; '*' is a wildcard.
        for candidate in all_jobs("lsf"):
            if forgotten(candidate) or ("-a" not in args and finished(candidate)):
                continue
            if any(fnmatch.fnmatchcase(lsf_name(candidate, index), pattern) for index in candidate["elements"]):
                ids.append(candidate["id"])
        if not ids:
            sys.stderr.write("No job found\n" if "-a" in args else "No unfinished job found\n")
            sys.exit(255)
    rc = 0
    for jid in ids:
        job = load(jid)
        if job is None or forgotten(job) or ("-a" not in args and finished(job)):
            sys.stderr.write(f"Job <{jid}> is not found\n")
            rc = 255
            continue
        for index, element in job["elements"].items():
            if pattern is not None and not fnmatch.fnmatchcase(lsf_name(job, index), pattern):
                continue
            state = element["state"]
            stat = {"queued": "PEND", "running": "RUN"}.get(state)
            if stat is None:
                stat = "DONE" if state == "done" and element["exit"] == 0 else "EXIT"
            ran = state == "done" or element.get("ran")
            wall = int(element.get("wall") or 0)
            values = {
                "jobid": jid, "jobindex": index if job["array"] else "0", "stat": stat,
                "job_name": lsf_name(job, index),
                "exit_code": str(element["exit"]) if stat == "EXIT" and element["exit"] is not None else "-",
                "exit_reason": "TERM_OWNER: job killed by owner" if state == "cancelled" else "-",
                "run_time": f"{wall} second(s)" if ran else "-",
                "cpu_used": "0.01 second(s)" if ran else "-",
                "max_mem": "3 Mbytes" if ran else "-",
                "exec_host": "fakehost" if ran or state == "running" else "-",
                "pend_reason": (job.get("never") or "New job is waiting for scheduling;") if state == "queued" else "-",
            }
            print("|".join(values[f] for f in fields))
    sys.exit(rc)


def all_jobs(kind: str) -> list[dict[str, Any]]:
    """Every job the fake recorded whose kind starts with ``kind``, oldest first."""
    jobs = []
    for path in sorted(STATE.glob("[0-9]*.json"), key=lambda p: int(p.name.split(".")[0])):
        if not path.name.endswith(".options.json"):
            job = json.loads(path.read_text())
            if job["kind"].startswith(kind):
                jobs.append(job)
    return jobs


def lsf_name(job: dict[str, Any], index: str) -> str:
    """The job name of one element, as bjobs shows it: ``NAME`` or, in an array, ``NAME[INDEX]``."""
    name = re.sub(r"\[.*$", "", job["options"].get("-J") or "NONAME")
    return f"{name}[{index}]" if job["array"] else name


def bparams(args: list[str]) -> None:
    """``bparams -a``: lsb.params as ``NAME = VALUE`` lines, with CLEAN_PERIOD (``FAKE_SCHED_FORGET_AFTER``)."""
    if "-a" not in args:
        die("fake bparams supports only -a", 2)
    kept = os.environ.get("FAKE_SCHED_FORGET_AFTER")
    print("System default queue for batch processing:\n    DEFAULT_QUEUE = normal\n"
          f"    CLEAN_PERIOD = {int(float(kept)) if kept else 3600}\n    MAX_JOB_ARRAY_SIZE = 1000")


def bkill(args: list[str]) -> None:
    rc = 0
    for jid in args:
        if load(jid) is None:
            sys.stderr.write(f"Job <{jid}>: No matching job found\n")
            rc = 255
        elif kill(jid, "TERM_OWNER", "TERM_OWNER", 130):
            print(f"Job <{jid}> is being terminated")
        else:
            sys.stderr.write(f"Job <{jid}>: Job has already finished\n")
            rc = 255
    sys.exit(rc)


TOOLS = {
    "qsub": qsub, "qstat": qstat, "qdel": qdel, "qselect": qselect,
    "condor_submit": condor_submit, "condor_q": condor_q, "condor_history": condor_history, "condor_rm": condor_rm,
    "bsub": bsub, "bjobs": bjobs, "bkill": bkill, "bparams": bparams,
    "_run": lambda a: run_elements(a[0]),
}


def log_call(tool: str, args: list[str]) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "calls.log", "a") as log:
        log.write(json.dumps([tool, *args]) + "\n")


if __name__ == "__main__":
    tool = sys.argv[1]
    if tool != "_run":
        log_call(tool, sys.argv[2:])
    TOOLS[tool](sys.argv[2:])
