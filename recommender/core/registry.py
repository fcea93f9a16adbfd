"""The one resolver behind every family's ``get()`` (activations, losses, initializers,
optimizers, regularizers), as Keras's ``get(identifier)`` functions.

An identifier is resolved in this order:

1. an instance of the family's class (``instance_of``) is returned as is;
2. a name is looked up case-insensitively in the family's registry; with ``instantiate`` the
   registered class is called with no arguments (a new object with Keras's defaults);
3. with ``from_config``, a dict ``{"class_name": name, "config": {...}}`` (what ``serialize``
   writes) becomes ``registry[name].from_config(config)``;
4. with ``allow_callable``, any other callable is returned as is (a custom function);
5. anything else is a ``ValueError`` naming the family and the identifier.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def lookup(name: str, registry: Mapping[str, Any], family: str,
           valid_names: Iterable[str] | None = None) -> Any:
    """``registry[name.lower()]``, or a ValueError listing the valid names (``valid_names``
    when the family accepts names outside its registry, else the registry's keys)."""
    key = name.lower()
    if key not in registry:
        names = sorted(registry if valid_names is None else valid_names)
        raise ValueError(f"Unknown {family}: {name!r}. Valid names: {names}")
    return registry[key]


def name_of(value: Any, registry: Mapping[str, Any]) -> str | None:
    """The registry name under which ``value`` itself is registered, or None."""
    for name, entry in registry.items():
        if entry is value:
            return name
    return None


def resolve(identifier: Any, registry: Mapping[str, Any], family: str, *,
            instance_of: type | tuple[type, ...] | None = None, instantiate: bool = False,
            from_config: bool = False, allow_callable: bool = True) -> Any:
    """Resolve a name, a config dict, an instance or a callable to a member of ``family``."""
    if instance_of is not None and isinstance(identifier, instance_of):
        return identifier
    if isinstance(identifier, str):
        entry = lookup(identifier, registry, family)
        return entry() if instantiate else entry
    if from_config and isinstance(identifier, dict) and "class_name" in identifier:
        cls = resolve(identifier["class_name"], registry, family, allow_callable=False)
        return cls.from_config(identifier.get("config", {}))
    if allow_callable and callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret {family} identifier: {identifier!r}")
