"""Readers for MovieLens layouts and plain CSV. Files are read from a path, never bundled."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ids import id_problem, item_id_problem
from .ratings import Ratings, factorize_ids, first_bad_row


@dataclass(frozen=True)
class _Layout:
    """How a ratings file is laid out, from its first lines."""

    kind: str  # "tab" (u.data), "colons" (ratings.dat, '::'), "csv"
    header: bool  # the first line is a header row
    n_fields: int  # fields per record: 3 (no timestamp) or 4 and more (extra ones ignored)

    @property
    def delimiter(self) -> str:
        # '::' is read as ':' with an empty field between each pair of values: pyarrow and
        # pandas' C parser take one-character delimiters only.
        return {"tab": "\t", "colons": ":", "csv": ","}[self.kind]

    @property
    def n_columns(self) -> int:
        """Columns the parser sees per record (twice minus one for '::')."""
        return 2 * self.n_fields - 1 if self.kind == "colons" else self.n_fields

    @property
    def used(self) -> list[int]:
        """The parser columns holding user, item, rating[, timestamp]."""
        step = 2 if self.kind == "colons" else 1
        return [step * k for k in range(min(self.n_fields, 4))]

    def split(self, line: str) -> list[str]:
        if self.kind == "tab":
            return line.split("\t")
        if self.kind == "colons":
            return line.split("::")
        return next(csv.reader([line]), [])


FIELDS = ("user", "item", "rating", "timestamp")


def _sniff_kind(path: Path) -> str:
    name = path.name.lower()
    if name == "u.data" or name.endswith(".data"):
        return "tab"
    if name.endswith(".dat"):
        return "colons"
    return "csv"


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        for candidate in ("u.data", "ratings.csv", "ratings.dat"):
            if (path / candidate).exists():
                return path / candidate
        raise ValueError(f"No ratings file (u.data, ratings.csv, ratings.dat) in {path}")
    if not path.exists():
        raise ValueError(f"ratings file not found. Received: path={str(path)!r}")
    return path


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _layout(path: Path, encoding: str) -> _Layout | None:
    """The layout from the first two non-blank lines; ``None`` for a file with no records."""
    kind = _sniff_kind(path)
    probe = _Layout(kind, False, 3)
    lines: list[tuple[int, str]] = []
    with path.open(encoding=encoding, newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                lines.append((lineno, line.rstrip("\r\n")))
            if len(lines) == 2:
                break
    if not lines:
        return None
    first = probe.split(lines[0][1])
    # A CSV header is a first line whose third field is not a number (or that has < 3 fields).
    header = kind == "csv" and lines[0][0] == 1 and (len(first) < 3 or not _is_number(first[2]))
    data = lines[1:] if header else lines
    if not data:
        return None
    return _Layout(kind, header, max(3, len(probe.split(data[0][1]))))


def _records(path: Path, layout: _Layout, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each record, as the parsers count them (blank lines and
    the header skipped). A slow path: only to name the line of a bad row."""
    with path.open(encoding=encoding, newline="") as fh:
        if layout.kind == "csv":
            reader = csv.reader(fh)
            lines = ((reader.line_num, row) for row in reader)
        else:
            lines = ((n, layout.split(line.rstrip("\r\n"))) for n, line in enumerate(fh, 1))
        for lineno, row in lines:
            if layout.header and lineno == 1:
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            yield lineno, row


def _check_record(layout: _Layout, row: list[str]) -> str | None:
    """What is wrong with one record, or ``None``."""
    if len(row) != layout.n_fields:
        return (f"expected {layout.n_fields} fields (user,item,rating[,timestamp]) like the "
                f"first record. Received: {row!r}")
    try:
        float(row[2])
    except ValueError:
        return f"rating must be a number. Received: rating={row[2]!r}"
    if len(row) > 3 and row[3].strip():
        try:
            int(row[3])
        except ValueError:
            return f"timestamp must be an integer (unix seconds). Received: timestamp={row[3]!r}"
    return None


def _raise_for_bad_record(path: Path, layout: _Layout, encoding: str) -> None:
    """Raise ``ValueError`` naming the first malformed record's line, if there is one."""
    for lineno, row in _records(path, layout, encoding):
        problem = _check_record(layout, row)
        if problem is not None:
            raise ValueError(f"{path}:{lineno}: {problem}")


def _raise_at_record(path: Path, layout: _Layout, encoding: str, index: int,
                     message: str) -> None:
    """Raise ``ValueError`` for record ``index`` (0-based, as the parsers count records) with
    ``message`` and its line, or for an earlier malformed record if there is one."""
    for n, (lineno, row) in enumerate(_records(path, layout, encoding)):
        problem = _check_record(layout, row)
        if problem is not None:
            raise ValueError(f"{path}:{lineno}: {problem}")
        if n == index:
            raise ValueError(f"{path}:{lineno}: {message}")
    raise ValueError(f"{path}: {message} (record {index})")


def read_ratings(path: str | Path, *, rating_min: float | None = None,
                 rating_max: float | None = None) -> Ratings:
    """Read MovieLens ``u.data``, ``ratings.dat``, ``ratings.csv`` or a plain CSV into columns.

    A plain CSV has columns ``user,item,rating[,timestamp]``, with or without a header row.
    Ids stay text (``"01"`` is not ``"1"``), dictionary-encoded while parsing, so no Python
    object is made per rating; pyarrow's parser runs when pyarrow is installed, pandas' C
    parser otherwise. Files are UTF-8 (latin-1 when they are not valid UTF-8).

    Raises ``ValueError`` with ``path:line`` for the first bad record: a malformed row, a
    rating that is not a finite number or (with ``rating_min`` / ``rating_max``) outside the
    scale, an empty id. An empty file (or a header alone) is an error too.
    """
    path = _resolve(path)
    encoding = "utf-8"
    try:
        layout = _layout(path, encoding)
    except UnicodeDecodeError:
        encoding = "latin-1"
        layout = _layout(path, encoding)
    if layout is None:
        raise ValueError(f"{path}: the file has no ratings (it is empty or holds a header "
                         f"only); expected lines of user,item,rating[,timestamp]")
    try:
        ratings = _read_pyarrow(path, layout, encoding)
    except ImportError:  # pandas alone: its parser takes extra fields silently, check first
        _raise_for_bad_record(path, layout, encoding)
        ratings = _read_pandas(path, layout, encoding)
    except UnicodeDecodeError:
        encoding = "latin-1"
        ratings = _read_pandas(path, layout, encoding)
    except ValueError:  # pyarrow.ArrowInvalid: a malformed record, or an odd but valid file
        _raise_for_bad_record(path, layout, encoding)
        ratings = _read_pandas(path, layout, encoding)
    low = -np.inf if rating_min is None else rating_min
    high = np.inf if rating_max is None else rating_max
    found = [f for f in (first_bad_row(ratings, rating_min=low, rating_max=high),
                         _first_bad_id(ratings)) if f is not None]
    if found:
        _raise_at_record(path, layout, encoding, *min(found))
    return ratings


def _first_bad_id(ratings: Ratings) -> tuple[int, str] | None:
    """``(row, message)`` for the first row whose user or item id the HTTP API would refuse
    (:func:`recommender.data.ids.id_problem`: 1-128 characters, no NUL, no lone
    surrogate, no '/'; for items also ``item_id_problem``: not 'new' nor 'popular'), so that
    every id the store holds can be addressed through the API.
    Checked once per distinct id (the categories), then mapped to the rows through the codes."""
    first: tuple[int, str] | None = None
    for field, ids, codes, problem_of in (
            ("user", ratings.user_ids, ratings.user_codes, id_problem),
            ("item", ratings.item_ids, ratings.item_codes, item_id_problem)):
        problems = [problem_of(str(value)) for value in ids]
        bad = np.fromiter((p is not None and len(value) > 0 for p, value in zip(
            problems, ids, strict=True)), dtype=bool, count=len(ids))  # empty: first_bad_row's
        if not bad.any():
            continue
        rows = bad[codes]
        row = int(np.argmax(rows))
        if not rows[row] or (first is not None and first[0] <= row):
            continue
        value = str(ids[codes[row]])
        shown = value if len(value) <= 40 else f"{value[:40]}... ({len(value)} characters)"
        first = (row, f"{field} id: {problems[codes[row]]}. Received: "
                      f"{field}={shown.encode('utf-8', 'backslashreplace').decode()!r}")
    return first


def _read_pyarrow(path: Path, layout: _Layout, encoding: str) -> Ratings:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    names = [f"c{k}" for k in range(layout.n_columns)]
    used = [names[k] for k in layout.used]
    ids = pa.dictionary(pa.int32(), pa.string())  # each distinct id parsed once
    types = dict(zip(used, [ids, ids, pa.float32(), pa.int64()], strict=False))
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=int(layout.header),
                                           encoding="utf8" if encoding == "utf-8" else encoding,
                                           block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=layout.delimiter,
                                             quote_char='"' if layout.kind == "csv" else False),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=used,
                                                 quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        if "invalid UTF8" in str(exc):
            raise UnicodeDecodeError(encoding, b"", 0, 1, str(exc)) from exc
        raise ValueError(str(exc)) from exc
    columns = []
    for name in used[:2]:
        chunked = table.column(name).unify_dictionaries()
        joined = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
        codes = joined.indices.fill_null(0).to_numpy(zero_copy_only=False)
        categories = np.asarray(joined.dictionary.to_pylist(), dtype=object)
        columns.append(_stripped(codes, categories))
    values = table.column(used[2]).to_numpy()  # nulls (empty fields) become NaN
    stamps = None
    if len(used) > 3:
        stamps = pc.fill_null(table.column(used[3]), 0).to_numpy()
    del table
    (user_codes, user_ids), (item_codes, item_ids) = columns
    return Ratings.from_codes(user_codes, item_codes, user_ids, item_ids,
                              values.astype(np.float32, copy=False), stamps)


def _read_pandas(path: Path, layout: _Layout, encoding: str) -> Ratings:
    """pandas' C parser, every field as text: the path without pyarrow, and for odd files."""
    import pandas as pd

    names = [f"c{k}" for k in range(layout.n_columns)]
    used = [names[k] for k in layout.used]
    try:
        frame = pd.read_csv(
            path, sep=layout.delimiter, header=None, names=names, usecols=used,
            skiprows=int(layout.header),
            dtype=dict.fromkeys(used[:2], "category") | dict.fromkeys(used[2:], str),
            keep_default_na=False, na_filter=False, encoding=encoding,
            quoting=csv.QUOTE_MINIMAL if layout.kind == "csv" else csv.QUOTE_NONE,
            skip_blank_lines=True, engine="c",
        )
    except pd.errors.ParserError as exc:  # a record with too many fields
        _raise_for_bad_record(path, layout, encoding)
        raise ValueError(f"{path}: {exc}") from exc
    columns = []
    for name in used[:2]:
        column = frame[name]
        columns.append(_stripped(column.cat.codes.to_numpy(),
                                 np.asarray(column.cat.categories.astype(str), dtype=object)))
    values = pd.to_numeric(frame[used[2]].str.strip(), errors="coerce").to_numpy(np.float32)
    stamps = None
    if len(used) > 3:
        text = frame[used[3]].str.strip()
        stamps = pd.to_numeric(text.where(text != "", "0"), errors="coerce").to_numpy()
        if np.isnan(stamps).any():  # a timestamp that is not a number: name its line
            _raise_for_bad_record(path, layout, encoding)
        stamps = stamps.astype(np.int64)
    (user_codes, user_ids), (item_codes, item_ids) = columns
    return Ratings.from_codes(user_codes, item_codes, user_ids, item_ids, values, stamps)


def _stripped(codes: np.ndarray, categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids without surrounding spaces (``"alice, 1, 4"``): stripped per category, not per row;
    categories that become equal are merged."""
    stripped = np.asarray([c.strip() for c in categories.tolist()], dtype=object)
    if (stripped == categories).all():
        return codes, categories
    new_codes, merged = factorize_ids(stripped)
    return new_codes[codes], merged


def read_item_titles(path: str | Path) -> dict[str, str]:
    """Titles from ``u.item``, ``movies.csv`` or ``movies.dat`` beside a ratings file."""
    return {item: meta["title"] for item, meta in read_item_metadata(path).items()}


ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]


def read_item_metadata(path: str | Path) -> dict[str, dict]:
    """``{item_id: {"title": ..., "genres": [...]}}`` from the MovieLens item file, if any."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    out: dict[str, dict] = {}
    if (folder / "u.item").exists():
        with (folder / "u.item").open(encoding="latin-1") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("|")
                if len(parts) < 5:
                    continue
                flags = parts[5:5 + len(ML100K_GENRES)]
                genres = [g for g, f in zip(ML100K_GENRES, flags, strict=False) if f == "1"]
                out[parts[0]] = {"title": parts[1], "genres": genres}
    elif (folder / "movies.csv").exists():
        with (folder / "movies.csv").open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                if len(row) >= 2:
                    genres = row[2].split("|") if len(row) > 2 and row[2] else []
                    out[row[0]] = {"title": row[1], "genres": genres}
    elif (folder / "movies.dat").exists():
        with (folder / "movies.dat").open(encoding="latin-1") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("::")
                if len(parts) >= 2:
                    genres = parts[2].split("|") if len(parts) > 2 and parts[2] else []
                    out[parts[0]] = {"title": parts[1], "genres": genres}
    return out
