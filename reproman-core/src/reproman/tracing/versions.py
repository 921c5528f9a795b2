"""Version ordering of Debian and RPM packages, written out in Python.

``diff --satisfies`` must decide whether ``2.36-9+deb12u4`` is at least
``2.36-9``, often on a machine that has neither ``dpkg`` nor ``rpm``, so the
two packaging systems' comparison rules are implemented here (and tested
against ``dpkg --compare-versions`` and ``rpm.vercmp``).
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d+")


# -- Debian (dpkg's verrevcmp) ----------------------------------------------
def _deb_order(char: str) -> int:
    """Weight of one non-digit character: ``~`` sorts before everything, even the end."""
    if char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _deb_part_compare(left: str, right: str) -> int:
    """Compare an upstream version or a revision the way dpkg does."""
    i = j = 0
    while i < len(left) or j < len(right):
        first_diff = 0
        # Non-digit run, character by character; the end of a string weighs 0.
        while (i < len(left) and not left[i].isdigit()) or (j < len(right) and not right[j].isdigit()):
            lc = _deb_order(left[i]) if i < len(left) else 0
            rc = _deb_order(right[j]) if j < len(right) else 0
            if lc != rc:
                return -1 if lc < rc else 1
            i += 1
            j += 1
        # Digit run, compared as numbers (leading zeros do not count).
        while i < len(left) and left[i] == "0":
            i += 1
        while j < len(right) and right[j] == "0":
            j += 1
        while i < len(left) and left[i].isdigit() and j < len(right) and right[j].isdigit():
            if not first_diff:
                first_diff = ord(left[i]) - ord(right[j])
            i += 1
            j += 1
        if i < len(left) and left[i].isdigit():
            return 1
        if j < len(right) and right[j].isdigit():
            return -1
        if first_diff:
            return -1 if first_diff < 0 else 1
    return 0


def _deb_split(version: str) -> tuple[int, str, str]:
    version = version.strip()
    epoch = 0
    if ":" in version:
        head, _, rest = version.partition(":")
        if head.isdigit():
            epoch, version = int(head), rest
    upstream, sep, revision = version.rpartition("-")
    if not sep:
        upstream, revision = version, ""
    return epoch, upstream, revision


def debian_compare(left: str, right: str) -> int:
    """-1, 0 or 1 as ``dpkg --compare-versions left lt/eq/gt right`` would say."""
    le, lu, lr = _deb_split(left)
    re_, ru, rr = _deb_split(right)
    if le != re_:
        return -1 if le < re_ else 1
    return _deb_part_compare(lu, ru) or _deb_part_compare(lr, rr)


# -- RPM (rpmvercmp) ---------------------------------------------------------
def _rpm_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def rpm_vercmp(left: str, right: str) -> int:
    """-1, 0 or 1 for two version (or release) strings, as ``rpmvercmp`` does."""
    if left == right:
        return 0
    i = j = 0
    while i < len(left) or j < len(right):
        while i < len(left) and not _rpm_alnum(left[i]) and left[i] not in "~^":
            i += 1
        while j < len(right) and not _rpm_alnum(right[j]) and right[j] not in "~^":
            j += 1
        lc = left[i] if i < len(left) else ""
        rc = right[j] if j < len(right) else ""
        if lc == "~" or rc == "~":  # tilde: sorts before anything, even the end
            if lc != "~":
                return 1
            if rc != "~":
                return -1
            i += 1
            j += 1
            continue
        if lc == "^" or rc == "^":  # caret: sorts after the end, before anything else
            if not lc:
                return -1
            if not rc:
                return 1
            if lc != "^":
                return 1
            if rc != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (lc and rc):
            break
        numeric = lc.isdigit()
        start_i, start_j = i, j
        if numeric:
            while i < len(left) and left[i].isdigit():
                i += 1
            while j < len(right) and right[j].isdigit():
                j += 1
        else:
            while i < len(left) and left[i].isascii() and left[i].isalpha():
                i += 1
            while j < len(right) and right[j].isascii() and right[j].isalpha():
                j += 1
        seg_l, seg_r = left[start_i:i], right[start_j:j]
        if not seg_r:  # different kinds of segment: numbers are newer than letters
            return 1 if numeric else -1
        if numeric:
            seg_l, seg_r = seg_l.lstrip("0"), seg_r.lstrip("0")
            if len(seg_l) != len(seg_r):
                return 1 if len(seg_l) > len(seg_r) else -1
        if seg_l != seg_r:
            return 1 if seg_l > seg_r else -1
    li, rj = i < len(left), j < len(right)
    if not li and not rj:
        return 0
    return 1 if li else -1


def rpm_compare(
    left_version: str,
    right_version: str,
    left_release: str | None = None,
    right_release: str | None = None,
    left_epoch: str | int | None = None,
    right_epoch: str | int | None = None,
) -> int:
    """Compare two (epoch, version, release) triples; a missing release matches any."""
    le = int(left_epoch or 0)
    re_ = int(right_epoch or 0)
    if le != re_:
        return -1 if le < re_ else 1
    result = rpm_vercmp(left_version, right_version)
    if result or not left_release or not right_release:
        return result
    return rpm_vercmp(left_release, right_release)
