"""Resource names (issue 13, case 2) and a symlinked inventory (case 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_helpers import assert_one_line_error, checksums, mode

from reproman import api
from reproman.errors import UsageError
from reproman.resources.inventory import Inventory, inventory_path
from reproman.testing.cli import run_cli

BAD_NAMES = ["../../x", "a/b", "x\ny", "x" * 65, "x" * 5000, ".hidden", "..", "-rf", "", "a b", "tab\tx",
             "ü", "semi;colon", "$(touch pwned)", "esc\x1b[2J"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=range(len(BAD_NAMES)))
def test_create_refuses_names_outside_the_rule(name: str) -> None:
    with pytest.raises(UsageError, match="invalid resource name .*letters, digits"):
        api.create(name, "shell", [])
    assert not inventory_path().exists()


@pytest.mark.parametrize("name", ["../../x", "x\ny", "x" * 5000])
def test_create_on_the_command_line_is_one_line(name: str) -> None:
    result = run_cli(["create", "-t", "shell", "--", name])
    assert "invalid resource name" in assert_one_line_error(result, code=2)
    assert not inventory_path().exists()


@pytest.mark.parametrize("argv", [["create"], ["create", "x", "-t"], ["create", "-rf", "-t", "shell"],
                                  ["ls", "--resref-type", "x\ny"]])
def test_argument_errors_are_one_line(argv: list[str]) -> None:
    line = assert_one_line_error(run_cli(argv), code=2)
    assert line.startswith(f"reproman {argv[0]}: error: ") and line.endswith(f"(see 'reproman {argv[0]} --help')")
    assert not inventory_path().exists()


def test_names_at_the_limits_are_accepted() -> None:
    for name in ("a", "9", "A.b_c-d", "x" * 64):
        api.create(name, "shell", [])
    assert {row["name"] for row in api.ls()} == {"local", "a", "9", "A.b_c-d", "x" * 64}


OLD_INVENTORY = """\
"../escape":
  type: shell
  id: old-1
"my box":
  type: shell
  id: old-2
{long}:
  type: shell
  id: old-3
"""


def test_old_inventories_with_other_names_load_run_where_safe_and_delete(workdir: Path) -> None:
    long_name = "y" * 300
    path = inventory_path()
    path.parent.mkdir(parents=True)
    path.write_text(OLD_INVENTORY.format(long=long_name))
    listing = run_cli(["ls", "--json"])
    assert listing.returncode == 0, listing.stderr
    assert "../escape" in listing.stdout and "my box" in listing.stdout

    home = workdir.parent / "home"
    for name in ("../escape", long_name):
        before = checksums(path)
        refused = run_cli(["run", "-r", name, "true"])
        assert "cannot name a job directory" in assert_one_line_error(refused, code=1)
        assert checksums(path) == before
    assert not (home / ".reproman" / "run-root" / ".reproman" / "escape").exists()
    assert not list(home.glob(".reproman/run-root/.reproman/jobs/*"))

    harmless = run_cli(["run", "--follow", "-r", "my box", "true"])
    assert harmless.returncode == 0, harmless.stderr
    assert (home / ".reproman" / "run-root" / ".reproman" / "jobs" / "my box").is_dir()

    for name in ("../escape", long_name):
        deleted = run_cli(["delete", "-y", name])
        assert deleted.returncode == 0, deleted.stderr
    assert set(Inventory().load()) == {"my box"}


def test_a_record_naming_itself_differently_is_still_deleted() -> None:
    path = inventory_path()
    path.parent.mkdir(parents=True)
    path.write_text("box:\n  name: other\n  type: shell\n")
    assert run_cli(["delete", "-y", "box"]).returncode == 0
    assert Inventory().load() == {}


def test_symlinked_inventory_is_written_at_its_target(tmp_path: Path) -> None:
    target = tmp_path / "synced" / "inventory.yml"
    target.parent.mkdir()
    api.create("first", "shell", [])
    link = inventory_path()
    link.rename(target)
    link.symlink_to(target)

    created = run_cli(["create", "second", "-t", "shell"])
    assert created.returncode == 0, created.stderr
    assert link.is_symlink() and link.resolve() == target
    assert set(Inventory(target).load()) == {"first", "second"}
    assert mode(target) == 0o600
    assert not list(link.parent.glob("*.tmp")) and not list(target.parent.glob(".*.tmp"))
    assert run_cli(["delete", "-y", "first"]).returncode == 0
    assert link.is_symlink() and "first" not in Inventory(target).load()


def test_dangling_inventory_link_is_an_empty_inventory_created_at_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "inventory.yml"
    target.parent.mkdir()
    link = inventory_path()
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    assert [r["name"] for r in json.loads(run_cli(["ls", "--json"]).stdout)] == ["local"]
    assert run_cli(["create", "box", "-t", "shell"]).returncode == 0
    assert link.is_symlink() and "box" in Inventory(target).load()


def _inventory_env(path: Path) -> dict[str, str]:
    return {"REPROMAN_GENERAL_INVENTORY_FILE": str(path)}


@pytest.mark.parametrize("argv", [["ls"], ["create", "box", "-t", "shell"]])
def test_configured_inventory_in_a_missing_directory_is_refused(tmp_path: Path, argv: list[str]) -> None:
    missing = tmp_path / "not" / "there" / "inv.yml"
    line = assert_one_line_error(run_cli(argv, env=_inventory_env(missing)), code=1)
    assert f"its directory {missing.parent} does not exist" in line
    assert not (tmp_path / "not").exists()


@pytest.mark.parametrize("argv", [["ls"], ["create", "box", "-t", "shell"]])
def test_inventory_link_into_a_missing_directory_is_refused(tmp_path: Path, argv: list[str]) -> None:
    link = inventory_path()
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path / "unmounted" / "inventory.yml")
    line = assert_one_line_error(run_cli(argv), code=1)
    assert "does not exist (the link" in line
    assert not (tmp_path / "unmounted").exists()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
@pytest.mark.parametrize("argv", [["ls"], ["create", "box", "-t", "shell"]])
def test_inventory_that_is_no_regular_file_is_refused_without_hanging(tmp_path: Path, kind: str,
                                                                      argv: list[str]) -> None:
    import os

    path = tmp_path / "inv.yml"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    result = run_cli(argv, env=_inventory_env(path), timeout=30)
    line = assert_one_line_error(result, code=1)
    assert f"inventory {path} is a {'FIFO' if kind == 'fifo' else 'directory'}" in line


@pytest.mark.parametrize("loop", ["self", "pair"])
@pytest.mark.parametrize("argv", [["ls"], ["create", "box", "-t", "shell"], ["delete", "-f", "box"]])
def test_inventory_link_that_loops_is_one_error_and_nothing_written(tmp_path: Path, argv: list[str],
                                                                     loop: str) -> None:
    """Re-trial: inventory.yml -> itself read as an empty inventory (and create then replaced the link)."""
    import os

    link = inventory_path()
    link.parent.mkdir(parents=True)
    other = link.parent / "other.yml"
    link.symlink_to(link.name if loop == "self" else other.name)
    if loop == "pair":
        other.symlink_to(link.name)
    before = sorted((p.name, os.readlink(p)) for p in link.parent.iterdir())
    line = assert_one_line_error(run_cli(argv), code=1)
    assert line.startswith(f"reproman: error: inventory {link} is a symbolic link that loops back on itself"), line
    assert sorted((p.name, os.readlink(p)) for p in link.parent.iterdir()) == before, "nothing written"


def test_any_record_written_through_a_looping_link_is_refused(tmp_path: Path) -> None:
    """The shared writer: replacing a looping link with a file would silently break the loop's other names."""
    from reproman.errors import LocalFileError
    from reproman.localfiles import atomic_write

    loop = tmp_path / "record.yml"
    loop.symlink_to(loop.name)
    with pytest.raises(LocalFileError, match=f"^cannot write {loop}: it is a symbolic link that loops back"):
        atomic_write(loop, "x: 1\n")
    assert loop.is_symlink() and [p.name for p in tmp_path.iterdir()] == ["record.yml"]
