"""The catalogue's filters and masks, without a server (service/catalogue.py)."""

from __future__ import annotations

import pytest
import torch

from recommender.service.catalogue import Catalogue, ItemFilter, Skipped, _State, parse_filter
from recommender.service.validation import FieldError


def test_where_matches_lists_scalars_and_numbers_as_text() -> None:
    f = parse_filter(None, ["genres:Comedy", "year:1995"])
    assert f.where == (("genres", "Comedy"), ("year", "1995"))
    assert f.matches({"genres": ["Drama", "Comedy"], "year": 1995})
    assert f.matches({"genres": "Comedy", "year": 1995.0})
    assert not f.matches({"genres": ["Drama"], "year": 1995})
    assert not f.matches({"genres": ["Comedy"]})
    assert not f.matches(None)
    assert parse_filter(None, {"kids": True}).matches({"kids": True})
    assert not parse_filter(None, {"kids": True}).matches({"kids": "True"})


def test_exclude_parses_commas_and_lists() -> None:
    assert parse_filter("a, b,c", None).exclude == {"a", "b", "c"}
    assert parse_filter(["a"], None).exclude == {"a"}
    assert not parse_filter("", None)
    assert not parse_filter(None, None)


@pytest.mark.parametrize(
    ("exclude", "where", "field", "message"),
    [
        ("a,,b", None, "exclude[1]", "exclude[1]: ids must be 1-128 characters. Received: "),
        (",".join(f"i{n}" for n in range(1001)), None, "exclude", "at most 1000 ids"),
        (
            None,
            ["genres"],
            "where",
            "where must look like field:value (e.g. genres:Comedy). Received: where='genres'",
        ),
        (None, ["genres:"], "where", "Received: where='genres:'"),
        (None, [f"f{n}:v" for n in range(11)], "where", "at most 10 conditions"),
        (
            None,
            {"genres": ["a"]},
            "where.genres",
            "a filter value must be a string, number or boolean. Received: genres=['a']",
        ),
    ],
)
def test_bad_filters_name_the_field_and_value(exclude, where, field, message) -> None:
    with pytest.raises(FieldError) as caught:
        parse_filter(exclude, where)
    assert caught.value.field == field
    assert message in caught.value.message


class _Model:
    def __init__(self, items: list[str]) -> None:
        self.item_ids = items
        self._item_index = {item: j for j, item in enumerate(items)}
        self.n_items = len(items)
        self.W = torch.zeros(len(items) * 2, 1)


def _catalogue(retired: set[str], metadata: dict, generation: int = 1) -> Catalogue:
    catalogue = Catalogue(session_factory=None)  # type: ignore[arg-type]
    catalogue._state = _State("fp", frozenset(retired), metadata, generation)
    return catalogue


def test_masks_combine_retired_where_and_exclude_and_follow_the_generation() -> None:
    model = _Model(["a", "b", "c", "d"])
    meta = {"a": {"g": ["x"]}, "b": {"g": ["y"]}, "c": {"g": ["x"]}}
    catalogue = _catalogue({"c"}, meta)
    assert catalogue.base_mask(model).tolist() == [True, True, False, True]
    f = parse_filter("a,zz", ["g:x"])
    assert catalogue.mask(model, f).tolist() == [False, False, False, False]
    assert catalogue.mask(model, parse_filter(None, ["g:x"])).tolist() == [
        True,
        False,
        False,
        False,
    ]
    cached = catalogue.base_mask(model, (("g", "x"),))
    assert catalogue.base_mask(model, (("g", "x"),)) is cached  # one mask per filter
    catalogue._state = _State("fp2", frozenset(), meta, 2)  # what refresh() does
    assert catalogue.base_mask(model) is None  # nothing retired, no filter: the fast path
    assert catalogue.base_mask(model, (("g", "x"),)).tolist() == [True, False, True, False]
    assert _catalogue(set(), {}).mask(model, parse_filter("b", None)).tolist() == [
        True,
        False,
        True,
        True,
    ]


def test_skipped_is_what_a_fallback_list_leaves_out() -> None:
    catalogue = _catalogue({"r"}, {"a": {"g": "x"}, "b": {"g": "y"}})
    skip = Skipped(catalogue, {"rated": 4}, ItemFilter(frozenset({"e"}), (("g", "x"),)))
    assert [i for i in ("a", "b", "r", "e", "rated", "unknown") if i not in skip] == ["a"]
    assert len(skip) > 1_000  # a where filter: read the whole list when the head runs out
    plain = Skipped(catalogue, {"rated": 4}, ItemFilter())
    assert [i for i in ("a", "b", "r", "rated", "unknown") if i not in plain] == [
        "a",
        "b",
        "unknown",
    ]
    assert len(plain) == 2
