"""The shared resolver behind every family's ``get()``, and each family's messages through it."""

from __future__ import annotations

import re

import pytest

from recommender.core import (
    activations,
    initializers,
    losses,
    metrics,
    optimizers,
    registry,
    regularizers,
)


class _Thing:
    def __init__(self, size: int = 1) -> None:
        self.size = size

    @classmethod
    def from_config(cls, config: dict) -> _Thing:
        return cls(**config)


def _square(x: int) -> int:
    return x * x


_REGISTRY = {"thing": _Thing, "square": _square}


def test_a_name_resolves_case_insensitively_to_the_entry_or_a_new_instance() -> None:
    assert registry.resolve("SQUARE", _REGISTRY, "widget") is _square
    made = registry.resolve("Thing", _REGISTRY, "widget", instantiate=True)
    assert type(made) is _Thing and made.size == 1


def test_an_unknown_name_lists_the_valid_names_sorted() -> None:
    message = "Unknown widget: 'Squares'. Valid names: ['square', 'thing']"
    with pytest.raises(ValueError, match=re.escape(message)):
        registry.resolve("Squares", _REGISTRY, "widget")
    message = "Unknown widget: 'x'. Valid names: ['a', 'square', 'thing']"
    with pytest.raises(ValueError, match=re.escape(message)):
        registry.lookup("x", _REGISTRY, "widget", valid_names=[*_REGISTRY, "a"])


def test_instances_pass_through_and_configs_rebuild() -> None:
    thing = _Thing(3)
    assert registry.resolve(thing, _REGISTRY, "widget", instance_of=_Thing) is thing
    rebuilt = registry.resolve({"class_name": "THING", "config": {"size": 7}}, _REGISTRY,
                               "widget", from_config=True)
    assert type(rebuilt) is _Thing and rebuilt.size == 7
    rebuilt = registry.resolve({"class_name": "thing"}, _REGISTRY, "widget", from_config=True)
    assert rebuilt.size == 1


def test_callables_pass_through_only_where_the_family_allows_them() -> None:
    def custom(x: int) -> int:
        return x

    assert registry.resolve(custom, _REGISTRY, "widget") is custom
    with pytest.raises(ValueError, match="Could not interpret widget identifier: <function"):
        registry.resolve(custom, _REGISTRY, "widget", allow_callable=False)


@pytest.mark.parametrize("identifier", [3, None, {"config": {}}, {"class_name": 5}])
def test_anything_else_is_refused_naming_the_family(identifier: object) -> None:
    with pytest.raises(ValueError, match="Could not interpret widget identifier: "):
        registry.resolve(identifier, _REGISTRY, "widget", from_config=True,
                         allow_callable=False)


def test_a_config_dict_is_only_read_where_the_family_takes_configs() -> None:
    with pytest.raises(ValueError, match=re.escape(
            "Could not interpret widget identifier: {'class_name': 'thing'}")):
        registry.resolve({"class_name": "thing"}, _REGISTRY, "widget")


def test_name_of_finds_the_first_name_an_entry_is_registered_under() -> None:
    assert registry.name_of(_square, _REGISTRY) == "square"
    assert registry.name_of(losses.mse, losses._REGISTRY) == "mean_squared_error"
    assert registry.name_of(abs, _REGISTRY) is None


# Each family keeps its own messages and rules through the shared resolver.
@pytest.mark.parametrize(("get", "family"), [
    (activations.get, "activation"), (losses.get, "loss"), (initializers.get, "initializer"),
    (optimizers.get, "optimizer"), (regularizers.get, "regularizer"),
])
def test_every_family_names_itself_in_its_errors(get, family: str) -> None:
    with pytest.raises(ValueError, match=f"^Unknown {family}: 'nope'. Valid names: \\["):
        get("nope")
    with pytest.raises(ValueError, match=f"^Could not interpret {family} identifier: 3$"):
        get(3)


def test_each_family_resolves_names_to_its_own_kind_of_object() -> None:
    assert activations.get(None) is activations.linear
    assert activations.get("ReLU") is activations.relu
    assert losses.get("MSE") is losses.mean_squared_error
    assert isinstance(initializers.get("zeros"), initializers.Zeros)
    adam = optimizers.get("adam")
    assert isinstance(adam, optimizers.Adam) and optimizers.get(adam) is adam
    sgd = optimizers.get({"class_name": "sgd", "config": {"learning_rate": 0.5}})
    assert isinstance(sgd, optimizers.SGD) and sgd.get_config()["learning_rate"] == 0.5
    l2 = regularizers.get({"class_name": "l2", "config": {"l2": 0.25}})
    assert isinstance(l2, regularizers.L2) and l2.get_config() == {"l2": 0.25}
    assert regularizers.get(None) is None
    with pytest.raises(ValueError, match="^Could not interpret optimizer identifier: <function"):
        optimizers.get(_square)  # an optimizer is never a bare callable
    message = "Unknown metric: 'f1'. Valid names: ['accuracy', 'binary_accuracy', "
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.get("f1")
    with pytest.raises(ValueError, match=re.escape("metrics must be names. Received: 3")):
        metrics.get(3)
