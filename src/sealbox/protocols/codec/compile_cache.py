"""Compile each shape's codec function once, even for recursive shapes."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

F = TypeVar("F")


def compile_once(
    cache: dict[Any, list[F | None]],
    key: Hashable,
    build: Callable[[], F],
    late: Callable[[list[F | None]], F],
) -> F:
    """The cached function for key, building it on first use.

    A shape reached again while its own function is still being built (a recursive
    shape) gets `late(cell)`: a function that calls the real one once it is bound.
    """
    cell = cache.get(key)
    if cell is not None:
        fn = cell[0]
        return fn if fn is not None else late(cell)
    cell = [None]
    cache[key] = cell
    built = build()
    cell[0] = built
    return built
