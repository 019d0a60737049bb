"""Generic name registries: loud on collisions, did-you-mean on unknown names, frozen after loading."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from harness.errors import RegistryError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    plugin: str  # the plugin that registered it


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """'unknown task 'x' (known: a, b). Did you mean 'y'?' -- shared by every lookup."""
    message = f"unknown {kind} {name!r} (known: {', '.join(known) or 'none'})"
    close = difflib.get_close_matches(name, known, n=1)
    return message + (f". Did you mean {close[0]!r}?" if close else "")


class Registry(Generic[T]):
    """Names to values, each with the plugin that registered it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._unavailable: dict[str, str] = {}  # name -> why (its plugin failed)
        self._failed_plugins: list[str] = []
        self._frozen = False

    def add(self, name: str, value: T, plugin: str) -> None:
        if self._frozen:
            raise RegistryError(f"the {self.kind} registry is frozen; register {name!r} from a plugin hook")
        if name in self._entries:
            first = self._entries[name].plugin
            if first == plugin:
                raise RegistryError(f"{self.kind} {name!r} is registered twice by plugin {plugin!r}; rename one")
            raise RegistryError(
                f"{self.kind} {name!r} is registered twice: by plugin {first!r} and by plugin {plugin!r}; "
                "rename one of them or uninstall one plugin"
            )
        self._entries[name] = Entry(name, value, plugin)

    def withdraw(self, name: str, reason: str) -> None:
        """Record that ``name`` was registered by a plugin that failed: looking it up raises ``reason``."""
        if self._frozen:
            raise RegistryError(f"the {self.kind} registry is frozen")
        if name not in self._entries:
            self._unavailable.setdefault(name, reason)

    def freeze(self, failed_plugins: list[str] | None = None) -> Registry[T]:
        """No more changes. ``failed_plugins`` are named when a lookup finds nothing."""
        self._failed_plugins = list(failed_plugins or [])
        self._frozen = True
        return self

    def get(self, name: str) -> T:
        return self.entry(name).value

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name``; ``RegistryError`` with the known names, a did-you-mean and failed plugins."""
        if name in self._entries:
            return self._entries[name]
        if name in self._unavailable:
            raise RegistryError(f"{self.kind} {name!r} is unavailable: {self._unavailable[name]}")
        message = unknown_name_message(self.kind, name, self.names())
        if self._failed_plugins:
            failed = ", ".join(repr(p) for p in self._failed_plugins)
            end = "" if message.endswith("?") else "."
            message += f"{end} Plugin(s) {failed} failed to load; see `harness plugins`"
        raise RegistryError(message)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def by_plugin(self, plugin: str) -> list[str]:
        return sorted(n for n, e in self._entries.items() if e.plugin == plugin)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)
