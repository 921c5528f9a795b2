"""The local dataset and its subdatasets: which are installed, and which dataset owns a path.

A job's inputs and outputs are paths relative to the top dataset, but git
and git-annex answer only for the dataset a path is in: ``git annex find
sub/file`` in the top dataset fails. Every place that asks git about a
path therefore first asks this module which dataset owns it and what the
path is called there.

The hierarchy is read with ``git`` alone (DataLad's Python API costs about
a second to import): ``.gitmodules`` names the subdatasets, the tree of
``HEAD`` records their commits, and a subdataset is installed when its
directory holds a ``.git``. Nothing is read from a dataset without
``.gitmodules``, so a dataset without subdatasets costs no extra call.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence

import attrs

from reproman_orchestrators_datalad.local_dataset import LocalDataset

TOP = "."


@attrs.frozen(kw_only=True)
class Node:
    """One dataset of the hierarchy."""

    #: POSIX path relative to the top dataset; ``"."`` for the top itself.
    path: str
    #: The commit the parent records for it (the top: its ``HEAD``).
    commit: str
    installed: bool
    #: Its parent's path (``""`` for the top).
    parent: str = ""


def repository(root: str, path: str) -> LocalDataset:
    """The repository of the dataset at ``path`` (relative to the top dataset at ``root``)."""
    return LocalDataset(root if path == TOP else os.path.join(root, *path.split("/")))


def join(dataset: str, rel: str) -> str:
    """``rel`` (relative to ``dataset``) as a path relative to the top."""
    if dataset == TOP:
        return rel
    return dataset if rel in ("", TOP) else posixpath.join(dataset, rel)


def within(path: str, dataset: str) -> bool:
    """Is ``path`` (relative to the top) inside ``dataset`` or the dataset itself?"""
    return dataset == TOP or path == dataset or path.startswith(dataset + "/")


def relative(path: str, dataset: str) -> str:
    """``path`` (relative to the top) as seen from ``dataset``; ``"."`` for the dataset itself."""
    if dataset == TOP:
        return path or TOP
    return TOP if path == dataset else path[len(dataset) + 1:]


class Hierarchy:
    """The datasets under a top dataset, parents before children."""

    def __init__(self, root: str, nodes: Sequence[Node]) -> None:
        self.root = os.path.abspath(root)
        self.nodes = list(nodes)
        self._by_path = {n.path: n for n in self.nodes}

    @classmethod
    def scan(cls, root: str) -> Hierarchy:
        """Read the hierarchy below ``root``, descending into installed subdatasets only."""
        top = LocalDataset(root)
        nodes = [Node(path=TOP, commit=top.rev("HEAD"), installed=True)]
        queue = [TOP]
        while queue:
            parent = queue.pop(0)
            for node in _children(root, parent):
                nodes.append(node)
                if node.installed:
                    queue.append(node.path)
        return cls(root, nodes)

    # -- queries ---------------------------------------------------------------
    @property
    def installed(self) -> list[Node]:
        return [n for n in self.nodes if n.installed]

    @property
    def subdatasets(self) -> list[Node]:
        return [n for n in self.nodes if n.path != TOP]

    def node(self, path: str) -> Node | None:
        return self._by_path.get(path)

    def dataset(self, path: str) -> LocalDataset:
        """The local repository of the installed dataset at ``path``."""
        return repository(self.root, path)

    def owner(self, path: str) -> Node:
        """The innermost known dataset containing ``path`` (installed or not)."""
        best = self.nodes[0]
        for node in self.nodes[1:]:
            # A dataset nested in another has the longer path.
            if within(path, node.path) and (best.path == TOP or len(node.path) > len(best.path)):
                best = node
        return best

    def uninstalled_owners(self, paths: Iterable[str]) -> list[Node]:
        """Subdatasets that hold one of ``paths`` but are not installed (so the path cannot exist yet)."""
        found: dict[str, Node] = {}
        for path in paths:
            node = self.owner(path)
            if not node.installed:
                found[node.path] = node
        return list(found.values())

    def split(self, paths: Iterable[str]) -> dict[str, list[str]]:
        """Group ``paths`` by the installed dataset that holds them, as paths relative to it.

        A path that is a directory containing installed subdatasets (``.``,
        or a subdataset's parent directory) also covers those subdatasets
        entirely, as ``"."`` in each: git answers for one repository only.
        Paths in subdatasets that are not installed are left out.
        """
        groups: dict[str, list[str]] = {}
        for path in paths:
            node = self.owner(path)
            if not node.installed:
                continue
            groups.setdefault(node.path, []).append(relative(path, node.path))
            for sub in self.installed:
                if sub.path != node.path and within(sub.path, node.path) and _below(sub.path, path):
                    groups.setdefault(sub.path, []).append(TOP)
        return {ds: list(dict.fromkeys(rels)) for ds, rels in groups.items()}

    def with_ancestors(self, paths: Iterable[str]) -> list[Node]:
        """The installed datasets holding ``paths`` and every dataset above them, parents first."""
        wanted: set[str] = set()
        for path in paths:
            node: Node | None = self.owner(path)
            while node is not None:
                wanted.add(node.path)
                node = self.node(node.parent) if node.parent else None
        return [n for n in self.nodes if n.path in wanted and n.installed]


def _below(sub: str, path: str) -> bool:
    """Is the subdataset ``sub`` inside the directory ``path`` (both relative to the top)?"""
    path = path.rstrip("/")
    return path in ("", TOP) or sub.startswith(path + "/")


def _children(root: str, parent: str) -> list[Node]:
    """The subdatasets registered in ``parent``'s ``.gitmodules`` and recorded in its ``HEAD``."""
    directory = os.path.join(root, *parent.split("/")) if parent != TOP else root
    if not os.path.isfile(os.path.join(directory, ".gitmodules")):
        return []
    repo = LocalDataset(directory)
    listed = repo.git("config", "-z", "-f", ".gitmodules", "--get-regexp", r"^submodule\..*\.path$", check=False)
    paths = [entry.split("\n", 1)[1] for entry in listed.stdout.split("\0") if "\n" in entry]
    if not paths:
        return []
    tree = repo.git("ls-tree", "-z", "HEAD", "--", *paths, check=False).stdout
    nodes = []
    for entry in tree.split("\0"):
        meta, _, name = entry.partition("\t")
        parts = meta.split()
        if len(parts) != 3 or parts[0] != "160000":
            continue
        full = join(parent, name)
        installed = os.path.exists(os.path.join(directory, name, ".git"))
        nodes.append(Node(path=full, commit=parts[2], installed=installed, parent=parent))
    return nodes
