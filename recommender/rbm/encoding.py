"""Encoding: ratings -> the RBM's visible indicator rows.

Every item is one visible unit with three states: unrated (the reference state, all-zero
indicators), disliked and liked. A user's row is the ``(n_items * 2,)`` indicator vector with
column ``item * 2 + state`` set for each rated item (state 0 disliked, 1 liked; a rating is
liked when ``>= config.like_threshold``). :class:`SparseRatings` keeps many users' rows as CSR
on the model's device; :class:`EncodingMixin` maps ids to rows and columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain, repeat

import numpy as np
import pandas as pd
import torch

from ..data.ratings import Ratings
from . import functional as Fn
from .base import RBMBase

N_STATES = 2  # weighted states per item: 0 = disliked, 1 = liked (unrated = reference)


class SparseRatings:
    """Users' binarized ratings as CSR on a device; rows densify batch by batch.

    ``columns`` holds ``item * 2 + state`` (state 0 disliked, 1 liked), so a dense row is
    directly the ``(n_items * 2,)`` indicator vector the RBM consumes.
    """

    def __init__(self, indptr: torch.Tensor, columns: torch.Tensor, n_columns: int) -> None:
        self.indptr = indptr  # (n_users + 1,) int64
        self.columns = columns  # (nnz,) int64
        self.n_columns = n_columns

    @property
    def n_rows(self) -> int:
        return self.indptr.numel() - 1

    @classmethod
    def from_indices(cls, rows: np.ndarray, items: np.ndarray, liked: np.ndarray, n_rows: int,
                     n_items: int, device: torch.device) -> SparseRatings:
        key = rows.astype(np.int64) * max(n_items, 1) + items  # (n,) row-major position
        if len(key) > 1 and not (key[1:] >= key[:-1]).all():  # store snapshots come sorted
            order = np.argsort(key, kind="stable")  # = lexsort((items, rows)), one key
            rows, items, liked = rows[order], items[order], liked[order]
        counts = np.bincount(rows, minlength=n_rows)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        columns = items.astype(np.int64) * N_STATES + liked.astype(np.int64)
        return cls(torch.from_numpy(indptr).to(device), torch.from_numpy(columns).to(device),
                   n_items * N_STATES)

    def batch(self, rows: torch.Tensor) -> Fn.SparseBatch:
        """The COO entries of these rows, grouped by row, built on the device."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        first = torch.cumsum(lengths, 0) - lengths  # (batch,) offsets into the entries
        total = int(lengths.sum())
        row_of = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), lengths,
                                         output_size=total)
        within = torch.arange(total, device=rows.device) - first[row_of]
        cols = self.columns[starts[row_of] + within]
        return Fn.SparseBatch(row_of=row_of, cols=cols, offsets=first, size=rows.numel())

    def dense(self, rows: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Indicator matrix ``(len(rows), n_items * 2)`` for these rows, built on the device."""
        return self.batch(rows).dense(self.n_columns, dtype)



class EncodingMixin(RBMBase):
    # -- data -------------------------------------------------------------------------------
    def _liked(self, values: np.ndarray) -> np.ndarray:
        return (values >= self.config.like_threshold).astype(np.int64)

    def encode(self, ratings: Ratings, user_index: Mapping[str, int] | None = None,
               ) -> tuple[SparseRatings, list[str]]:
        """Ratings -> CSR over this model's items (unknown items dropped) and the user list.

        Ids are looked up once per distinct id (``pandas.Index.get_indexer`` over the id
        categories), then mapped to every rating through its integer codes: no per-rating
        dictionary lookup. ``user_index`` gives each user's row (users absent from it are
        dropped); by default every user of ``ratings``, rows in id order.
        """
        if user_index is None:
            used = np.flatnonzero(np.bincount(ratings.user_codes,
                                              minlength=len(ratings.user_ids)))
            users = ratings.user_ids[used].tolist()
            row_of_code = np.full(len(ratings.user_ids), -1, dtype=np.int64)
            row_of_code[used] = np.arange(len(used))
        else:
            users = sorted(user_index, key=user_index.__getitem__)
            known_rows = np.fromiter(user_index.values(), dtype=np.int64, count=len(user_index))
            position = pd.Index(list(user_index)).get_indexer(ratings.user_ids)
            row_of_code = np.where(position >= 0, known_rows[position], -1)
        col_of_code = pd.Index(self.item_ids).get_indexer(ratings.item_ids)  # -1: unknown
        rows = row_of_code[ratings.user_codes]  # (n,) int64
        cols = col_of_code[ratings.item_codes]  # (n,) int64
        keep = (rows >= 0) & (cols >= 0)
        if keep.all():
            keep = slice(None)  # no copies of the columns when every rating is kept
        sparse = SparseRatings.from_indices(rows[keep], cols[keep],
                                            self._liked(ratings.values[keep]), len(users),
                                            self.n_items, self.device)
        return sparse, users

    def _encode_entries(self, users_ratings: Sequence[Mapping[str, float]]) -> Fn.SparseBatch:
        """``[{item: rating}, ...]`` -> the COO entries of their indicator rows.

        Items unknown to the model are ignored. One pass over the whole batch (the serving
        hot path): the item lookups run in C (``map`` over ``dict.get``) and every array
        operation happens once per batch, not once per user.
        """
        lengths = np.fromiter(map(len, users_ratings), dtype=np.int64, count=len(users_ratings))
        total = int(lengths.sum())
        index = np.fromiter(map(self._item_index.get, chain.from_iterable(users_ratings),
                                repeat(-1)), dtype=np.int64, count=total)
        values = np.fromiter(chain.from_iterable(m.values() for m in users_ratings),
                             dtype=np.float64, count=total)
        if not np.isfinite(values).all():
            bad = int(np.argmax(~np.isfinite(values)))
            user = int(np.searchsorted(np.cumsum(lengths), bad, side="right"))
            item = list(users_ratings[user])[bad - int(lengths[:user].sum())]
            raise ValueError(f"rating must be a finite number. Received: "
                             f"rating={float(values[bad])!r} (item={item!r})")
        unknown = np.flatnonzero(index < 0)
        if len(unknown):  # ids given as non-strings (e.g. ints): look them up as text
            keys = list(chain.from_iterable(users_ratings))
            for position in unknown:
                index[position] = self._item_index.get(str(keys[position]), -1)
        user_of = np.repeat(np.arange(len(lengths)), lengths)
        known = index >= 0
        cols = index[known] * N_STATES + (values[known] >= self.config.like_threshold)
        counts = torch.from_numpy(np.bincount(user_of[known], minlength=len(lengths)))
        return Fn.SparseBatch(row_of=torch.from_numpy(user_of[known]).to(self.device),
                              cols=torch.from_numpy(cols).to(self.device),
                              offsets=(torch.cumsum(counts, 0) - counts).to(self.device),
                              size=len(lengths))

    def encode_mappings(self, users_ratings: Sequence[Mapping[str, float]]) -> torch.Tensor:
        """``[{item: rating}, ...] -> (users, n_items * 2)`` indicators; unknown items ignored."""
        return self._encode_entries(users_ratings).dense(self.n_items * N_STATES)

