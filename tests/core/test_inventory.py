"""The inventory survives concurrency, crashes and malformed files."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from reproman import api
from reproman.errors import (
    AmbiguousResourceError,
    InventoryError,
    LocalFileError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from reproman.resources.inventory import Inventory, inventory_path
from reproman.testing.cli import run_cli


def _create_many(prefix: str, count: int) -> None:
    from reproman.config import reset_config

    reset_config()
    for i in range(count):
        api.create(f"{prefix}-{i}", "shell", [])


def test_concurrent_creates_from_processes_lose_nothing() -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_create_many, args=(f"p{n}", 10)) for n in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    names = {row["name"] for row in api.ls()} - {"local"}
    assert names == {f"p{n}-{i}" for n in range(4) for i in range(10)}


def test_inventory_is_private_and_has_header() -> None:
    api.create("box", "shell", [])
    path = inventory_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("# ReproMan inventory")


def test_malformed_inventory_is_reported_and_left_untouched() -> None:
    path = inventory_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    broken = "box:\n  type: shell\n  id: [unclosed\n"
    path.write_text(broken)
    result = run_cli(["ls"])
    assert result.returncode == 1
    assert f"{path}:" in result.stderr and "inventory left untouched" in result.stderr
    assert "Traceback" not in result.stderr
    created = run_cli(["create", "other", "-t", "shell"])
    assert created.returncode == 1
    assert path.read_text() == broken


def test_inventory_of_wrong_shape() -> None:
    path = inventory_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("- just\n- a list\n")
    with pytest.raises(InventoryError, match="not a mapping"):
        Inventory().load()


def test_crash_during_write_keeps_previous_file(monkeypatch: pytest.MonkeyPatch) -> None:
    api.create("keep", "shell", [])
    before = inventory_path().read_text()

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    # Inject the fault a real disk cannot be made to produce on demand.
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash)
        with pytest.raises(LocalFileError, match=f"cannot write {inventory_path()}: disk full"):
            api.create("lost", "shell", [])
    assert inventory_path().read_text() == before
    assert not [p for p in inventory_path().parent.iterdir() if p.name.endswith(".tmp")]


def test_resref_by_name_id_and_prefix() -> None:
    a = api.create("alpha", "shell", [])
    b = api.create("beta", "shell", [])
    assert api.ls(a.id)[0]["name"] == "alpha"
    assert api.ls(b.id[:8], resref_type="id")[0]["name"] == "beta"
    with pytest.raises(ResourceNotFoundError):
        api.ls("alpha", resref_type="id")
    with pytest.raises(ResourceExistsError):
        api.create("alpha", "shell", [])
    with Inventory().edit() as records:
        records["alpha"]["id"] = "same-prefix-1"
        records["beta"]["id"] = "same-prefix-2"
    with pytest.raises(AmbiguousResourceError, match="alpha, beta"):
        api.ls("same-prefix")


def test_inventory_location_from_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reproman.config import reset_config

    target = tmp_path / "elsewhere" / "inv.yml"
    target.parent.mkdir()  # a configured inventory's directory is never created (a typo would hide the real one)
    monkeypatch.setenv("REPROMAN_GENERAL_INVENTORY_FILE", str(target))
    reset_config()
    api.create("moved", "shell", [])
    assert "moved" in Inventory(target).load()
