"""The one registration idiom of every pluggable kind, after timm's `@register_model` and CompressAI's
`register_model`: a decorator at the definition, a lookup by name, the list of names.

    CODECS = Registry("codec kind", attribute="kind")

    @CODECS.register("hyperprior")
    class MeanScaleFeatureHyperprior(FeatureCodec): ...

    CODECS.get("hyperprior")      # unknown names raise UnknownNameError (exit code 3) listing the known ones
    CODECS.names()                # sorted: what the study validation, the CLI and the docs ask

Registries: codec kinds (`codec.models.registry.CODECS`), entropy coders (`codec.entropy.coders.CODERS`),
encoders (`probes.encoders.registry.ENCODERS`), heads (`probes.heads.registry.HEADS`, by spec scheme;
`probes.heads.builtin.BUILTIN_HEADS`, by task; `probes.heads.hf.HF_HEADS`, by transformers model type),
tasks (`probes.tasks.base.TASKS`) and data sources (`probes.data.base.DATASETS`); docs/architecture.md
lists each kind's decorator. A kind whose entries carry more than the object (an encoder's spec, a data
source's usage) wraps `register` in a decorator of its own that takes those fields. This module is
torch-free; the names the instant CLI needs without importing a registry are indexed in `codec/names.py` and
`probes/names.py` (tests/architecture/test_names.py keeps each index equal to its registry).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from codec.errors import InputError

T = TypeVar("T")


class UnknownNameError(InputError):
    """A name no entry of a registry has; the message names it and lists the known ones."""


class Registry(Generic[T]):
    """Named entries of one kind, added with the `register(name)` decorator.

    `attribute`: set on each registered object to its name (a codec's `kind`, a coder's or task's `name`).
    `modules`: modules that register entries when imported, imported on the first lookup (so a registry's
    package stays quick to import when its entries pull in heavy libraries).
    `error`: the `InputError` subclass an unknown name raises (a kind's own, e.g. `HeadError`).
    """

    def __init__(
        self,
        kind: str,
        *,
        attribute: str | None = None,
        modules: Iterable[str] = (),
        error: type[InputError] = UnknownNameError,
    ) -> None:
        self.kind = kind
        self._attribute = attribute
        self._error = error
        self._modules = tuple(modules)
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding its object under `name` and returning it unchanged (names are registered once)."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if self._attribute is not None:
                setattr(obj, self._attribute, name)
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            raise self._error(self.unknown(name))
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def unknown(self, name: str) -> str:
        """The message for a name that is not registered: the closest known name, or all of them."""
        near = difflib.get_close_matches(str(name), self.names(), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        return f"unknown {self.kind} {name!r}; {hint}choose from {', '.join(self.names())}"

    def _load(self) -> None:
        modules, self._modules = self._modules, ()  # cleared first: the modules call register while importing
        for module in modules:
            importlib.import_module(module)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
