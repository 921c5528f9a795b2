"""Which dataset owns a path: git and git-annex answer only for their own repository."""

from __future__ import annotations

from pathlib import Path

from reproman_orchestrators_datalad import testing as yoda
from reproman_orchestrators_datalad.hierarchy import Hierarchy, Node

TREE = Hierarchy("/ds", [
    Node(path=".", commit="a", installed=True),
    Node(path="inputs", commit="b", installed=True, parent="."),
    Node(path="outputs", commit="c", installed=True, parent="."),
    Node(path="outputs/derived", commit="d", installed=True, parent="outputs"),
    Node(path="outputs-old", commit="e", installed=False, parent="."),
    Node(path="data/raw", commit="f", installed=True, parent="."),
])


def test_owner_is_the_innermost_dataset() -> None:
    assert TREE.owner("code/run.sh").path == "."
    assert TREE.owner("outputs").path == "outputs"
    assert TREE.owner("outputs/derived/x.txt").path == "outputs/derived"
    assert TREE.owner("outputs-old/x").path == "outputs-old"  # a prefix of the name is not containment
    assert TREE.owner("outputs/derivedX").path == "outputs"


def test_split_groups_paths_by_dataset_and_covers_subdatasets_below_directories() -> None:
    groups = TREE.split(["inputs/s00.csv", "outputs/derived/a", "outputs/b", "data", "outputs-old/x"])
    assert groups == {
        "inputs": ["s00.csv"],
        "outputs/derived": ["a"],
        "outputs": ["b"],
        ".": ["data"],
        "data/raw": ["."],
    }
    everything = TREE.split(["."])
    assert set(everything) == {".", "inputs", "outputs", "outputs/derived", "data/raw"}


def test_uninstalled_owners_and_ancestors() -> None:
    assert [n.path for n in TREE.uninstalled_owners(["outputs-old/x", "inputs/y"])] == ["outputs-old"]
    assert [n.path for n in TREE.with_ancestors(["outputs/derived/a", "x"])] == [".", "outputs", "outputs/derived"]


def test_scan_reads_the_yoda_hierarchy(yoda_ds: Path) -> None:
    tree = Hierarchy.scan(str(yoda_ds))
    assert [(n.path, n.installed, n.parent) for n in tree.nodes] == [
        (".", True, ""), ("inputs", True, "."), ("outputs", True, "."), ("outputs/derived", True, "outputs"),
    ]
    assert tree.node("outputs/derived").commit == yoda.head(yoda_ds, "outputs/derived")  # type: ignore[union-attr]
