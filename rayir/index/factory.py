"""rayir's own index factory strings, ``name[,key=integer…]`` (``compressed``, ``pruned``): one parser,
so a misspelt or non-integer setting is the same clear error for every backend."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigError


def integer_settings(factory: str, name: str, keys: Iterable[str]) -> dict[str, int]:
    """The ``key=integer`` settings of ``factory``, which must start with ``name``; an unknown key
    or a value that is not a non-negative integer is a :class:`ConfigError` naming it."""
    head, *parts = [p.strip() for p in factory.split(",")]
    if head != name:
        raise ConfigError(f"factory {factory!r} is not a {name} index ('{name}[,name=value…]')")
    known = sorted(keys)
    values: dict[str, int] = {}
    for part in parts:
        key, _, value = part.partition("=")
        if key not in known or not value.strip().isdigit():
            raise ConfigError(f"factory {factory!r}: {part!r}; expected name=integer, name one of {known}")
        values[key] = int(value)
    return values
