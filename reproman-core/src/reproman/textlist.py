"""Comma-separated lists on the command line, with a way to write a comma inside an item.

One rule for every ``KEY=V1,V2`` value ReproMan splits (``--jp env=``,
``--jp directives=``, ``--bp``): ``\\,`` is a comma inside the item and
``\\\\`` a backslash (so ``C:\\\\,x`` is the two items ``C:\\`` and ``x``).
Any other backslash is kept as written, so a value such as ``a\\b`` or a
regular expression ``\\d+`` needs no escaping unless it ends an item.
Without an escape a value containing a comma cannot be given at all, and a
splitter that unescaped only ``\\,`` could not end an item with a backslash.
"""

from __future__ import annotations

#: Characters a backslash escapes in a comma-separated list.
_ESCAPED = frozenset(",\\")


def split_escaped(text: str) -> list[str]:
    """``text`` split at each unescaped comma, escapes resolved; items are returned exactly, spaces included.

    ``"A=1\\,2,B=x"`` -> ``["A=1,2", "B=x"]``; ``""`` -> ``[""]``.
    """
    items: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, None)
            if following is None:
                current.append(char)
            elif following in _ESCAPED:
                current.append(following)
            else:
                current.append(char + following)
        elif char == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return items
