"""The environment spec format: old ReproMan compatibility, header, errors with file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reproman.errors import SpecError
from reproman.tracing.spec import (
    SPEC_VERSION,
    EnvironmentSpec,
    dump_yaml,
    load_spec,
    loads_spec,
    merge_entries,
)

# A spec as the old ReproMan wrote and documented it: compact ``distributions``
# mapping, an empty ``conda:`` entry, unquoted versions that YAML reads as
# numbers, unquoted dates.
OLD_SPEC = """\
# More or less detailed (but minimalistic) example for the reproman spec
version: "0.0.1"

distributions:
 debian:
   apt_sources:
     - name: apt_Debian_sid_main_0
       component: main
       archive: unstable
       architecture: amd64
       codename: sid
       origin: Debian
       label: Debian
       site: http.debian.net
       archive_uri: 'http://http.debian.net/debian/'
       date: '2017-05-31 08:40:46+00:00'
   packages:
     - name: libc6-dev
       source_name: glibc
       versions:
          2.19-18+deb8u4: [apt_Debian_sid_main_0]
       version: 2.19-18+deb8u4
       architecture: amd64
       size: 12602202
       md5: 17ba9548d5f3937431dab210b1a97aff
       install_date: 2017-11-29 15:01:38+00:00
       files:
        - "/usr/lib/x86_64-linux-gnu/libc.so"
     - name: tzdata
       version: 1.10
       architecture: all
       files: [/usr/share/zoneinfo/UTC]
 conda:

files:
 - "/opt/blah"
"""

# Fields the old ReproMan's attrs classes accept: its loader raises on any other.
OLD_FIELDS = {
    "spec": {"version", "base", "distributions", "files"},
    "debian": {"name", "apt_sources", "packages", "version"},
    "apt_source": {"name", "component", "archive", "architecture", "codename", "origin", "label", "site",
                   "archive_uri", "date"},
    "deb_package": {"name", "upstream_name", "version", "architecture", "source_name", "source_version", "size",
                    "md5", "sha1", "sha256", "versions", "install_date", "files"},
}


def test_old_spec_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "old.yml"
    path.write_text(OLD_SPEC)
    spec = load_spec(path)
    assert spec.version == "0.0.1"
    assert spec.names() == ["debian", "conda"]
    debian = spec.get_distribution("debian")
    assert debian is not None
    libc = debian["packages"][0]
    assert libc["name"] == "libc6-dev" and libc["source_name"] == "glibc"
    assert libc["versions"] == {"2.19-18+deb8u4": ["apt_Debian_sid_main_0"]}
    assert libc["size"] == 12602202
    # Unquoted timestamp and float-looking version stay the text that was written.
    assert libc["install_date"] == "2017-11-29 15:01:38+00:00"
    assert debian["packages"][1]["version"] == "1.10"
    assert debian["apt_sources"][0]["origin"] == "Debian"
    assert spec.get_distribution("conda") == {"name": "conda"}
    assert spec.files == ["/opt/blah"]


def test_round_trip_and_header() -> None:
    spec = loads_spec(OLD_SPEC, "old.yml")
    text = spec.to_yaml()
    first, second = text.splitlines()[:2]
    assert first == "# ReproMan Environment Configuration File"
    from reproman import __version__

    assert second.startswith(f"# This file was created by ReproMan {__version__} on 20")
    again = loads_spec(text, "new.yml")
    assert again.distributions == spec.distributions
    assert again.files == spec.files
    assert text.index("version: 0.0.1") < text.index("distributions:") < text.index("files:")


def test_written_spec_reads_back_in_yaml_1_1() -> None:
    """The old ReproMan reads with PyYAML (YAML 1.1): no string may turn into a number or boolean."""
    yaml = pytest.importorskip("yaml")
    tricky = ["1:2.3", "1.10", "yes", "on", "012", "1_000", "2017-05-31", "null", "5.2.15-2+b8", "1:7.7+23"]
    spec = EnvironmentSpec(distributions=[{
        "name": "debian",
        "packages": [{"name": f"p{i}", "version": v, "versions": {v: ["apt__now__0"]}} for i, v in enumerate(tricky)],
    }])
    data = yaml.safe_load(spec.to_yaml())
    assert data["version"] == SPEC_VERSION
    got = [p["version"] for p in data["distributions"][0]["packages"]]
    assert got == tricky
    assert [next(iter(p["versions"])) for p in data["distributions"][0]["packages"]] == tricky


def test_written_fields_are_known_to_the_old_tool() -> None:
    from reproman.resources.shell import ShellSession
    from reproman.tracing.retrace import trace_paths

    spec = trace_paths(ShellSession(), ["/usr/bin/ls", "/usr/bin/bash"])
    if not spec.entries("debian"):
        pytest.skip("not a Debian system")
    data = spec.to_dict()
    assert set(data) <= OLD_FIELDS["spec"]
    debian = spec.entries("debian")[0]
    assert set(debian) <= OLD_FIELDS["debian"]
    for source in debian["apt_sources"]:
        assert set(source) <= OLD_FIELDS["apt_source"]
    for package in debian["packages"]:
        assert set(package) <= OLD_FIELDS["deb_package"]


def test_empty_values_are_left_out() -> None:
    spec = EnvironmentSpec(distributions=[{"name": "debian", "version": None, "packages": [], "apt_sources": []}])
    assert spec.to_dict() == {"version": "0.0.1", "distributions": [{"name": "debian"}]}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("version: 0.0.1\ndistributions:\n  - name: debian\n    packages: [\n", 5, "malformed YAML"),
        ("version: 0.0.1\ndistributions:\n  - name: debian\n  - version: 1\n", 4, "has no 'name'"),
        ("version: 0.0.1\ndistributions:\n  - name: debian\n    packages: notalist\n", 4, "'packages' of the debian"),
        ("version: 0.0.1\nfiles:\n  - /a\n  - [1, 2]\n", 2, "'files' must be a list of paths"),
        ("version: 0.0.1\nbogus: 1\n", 2, "unknown key 'bogus'"),
        ("runs: []\npackages: []\n", 1, "ReproZip"),
        ("- just\n- a list\n", None, "expected a mapping"),
    ],
)
def test_malformed_spec_names_file_and_line(tmp_path: Path, text: str, line: int | None, words: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert words in message
    if line is not None:
        assert f"{path}:{line}" in message


def test_unreadable_and_empty(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yml")
    (tmp_path / "empty.yml").write_text("")
    with pytest.raises(SpecError, match="empty"):
        load_spec(tmp_path / "empty.yml")


def test_merge_and_lookup_helpers() -> None:
    a: dict[str, Any] = {"name": "debian", "version": "12", "packages": [{"name": "bash", "architecture": "amd64", "files": ["/a"]}]}
    b: dict[str, Any] = {"name": "debian", "version": "12", "packages": [
        {"name": "bash", "architecture": "amd64", "files": ["/b"]},
        {"name": "coreutils", "architecture": "amd64", "files": ["/c"]},
    ]}
    merged = merge_entries([a, b])
    assert [p["name"] for p in merged["packages"]] == ["bash", "coreutils"]
    assert merged["packages"][0]["files"] == ["/a", "/b"]
    assert a["packages"][0]["files"] == ["/a"], "inputs are not modified"

    spec = EnvironmentSpec()
    spec.add([a])
    spec.add([b, {"name": "conda", "environments": []}])
    assert spec.names() == ["debian", "conda"]
    assert len(spec.entries("debian")) == 1
    assert spec.get_distribution("debian") == merged
    assert spec.get_distribution("svn") is None
    spec.distributions.append(dict(a))
    again = spec.get_distribution("debian")
    assert again is not None and again["packages"][0]["files"] == ["/a", "/b"]


def test_dump_yaml_header_lines() -> None:
    text = dump_yaml({"a": 1}, "line one\n\nline three")
    assert text.splitlines()[:3] == ["# line one", "#", "# line three"]


TRICKY_STRINGS = [
    "", " ", "a b", "a: b", "a #b", "#x", "- x", "-x", "x:", ":x", "*ref", "&anchor", "!tag", "|", ">", "%x", "@x",
    "`x", "{a}", "[a]", "a,b", "'q'", '"dq"', "new\nline", "tab\tx", "ü ñ", "~", "null", "Null", "NULL", "true",
    "False", "yes", "No", "on", "OFF", "y", "n", "0x1F", "0o17", "017", "1e3", ".inf", "-.Inf", ".nan", "1_000",
    "1:20", "1:2.3", "2017-05-31", "2017-05-31 08:40:46+00:00", "=", "<<", "?", "? x", "/usr/bin/[", "C:\\path",
    "trailing ", " leading", "1.10", "5.2.15-2+b8", "http://deb.debian.org/debian", "a\\b", "\u2028x", "x\x7f",
]


def test_fast_emitter_agrees_with_ruamel_and_pyyaml() -> None:
    from reproman.tracing.spec import dump_yaml, dump_yaml_ruamel, parse_yaml

    yaml = pytest.importorskip("yaml")
    data: dict[str, Any] = {
        "version": "0.0.1",
        "distributions": [{
            "name": "debian", "n": 3, "b": True, "none": None, "empty_list": [], "empty_map": {},
            "packages": [{"name": s, "versions": {s: [s, s]}} for s in TRICKY_STRINGS],
            "nested": [[1, [2, "x"]], {"a": [{"b": {"c": "d"}}]}],
        }],
        "files": TRICKY_STRINGS,
    }
    fast = dump_yaml(data, "header")
    assert fast.startswith("# header\n")
    assert parse_yaml(fast) == parse_yaml(dump_yaml_ruamel(data)) == data
    assert yaml.safe_load(fast) == data
