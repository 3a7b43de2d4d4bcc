"""Plug-in data sets: a folder of the user's own files, checked and turned into the canonical ``Dataset``.

The format (config/README.md, "Plug in your own data set"):
- ``response.csv`` (or ``.tsv``): columns ``cell_line, drug, response`` and optionally ``tissue``; other
  columns are ignored. One row per pair: exact duplicate rows are collapsed, the same pair with two
  different values is an error (aggregate replicates before plugging them in).
- one file per omics view: ``<view>.csv`` / ``<view>.tsv`` (one row per cell line, its id in the first
  column, one column per feature) or ``<view>.h5ad`` (obs_names = cell lines, dense or sparse X).
  ``files: {<view>: <file name>}`` in the config names other files.
- optional ``cell_lines.csv`` (``cell_line``, ``tissue``, any annotation) and ``drugs.csv`` (``drug, smiles``).
``.csv`` is comma-separated, ``.tsv`` tab-separated, both UTF-8; a UTF-8 byte-order mark (Excel's
"CSV UTF-8") is accepted and dropped. Ids lose surrounding spaces. Every problem raises
``DatasetFormatError`` naming the file, the line (as an editor numbers it: the header is line 1) or column,
and what was expected; the build writes nothing before everything has been read and checked. Every file is
found and read the same way: extensions match whatever their case, a name that exists but is not a readable
regular file (a directory, a FIFO, a dangling symlink) is an error, never taken for an absent optional table;
line ends are LF or CR LF (a lone CR is an error); empty unnamed columns at the end of the header (as Excel
writes them) are dropped.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd

from .. import dataset as canonical
from ..dataset import UNKNOWN_TISSUE, Dataset, make_view
from ..io import sha256sum

log = logging.getLogger(__name__)

TABLES = ("response", "cell_lines", "drugs")  # fixed names in the folder; no view may take one of them
REQUIRED_COLUMNS = {"response": ["cell_line", "drug", "response"], "cell_lines": ["cell_line"],
                    "drugs": ["drug", "smiles"]}
SEPARATORS = {".csv": ",", ".tsv": "\t"}
SEPARATOR_NAMES = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "vertical bars"}
TABLE_SUFFIXES = (".csv", ".tsv")
VIEW_SUFFIXES = (".csv", ".tsv", ".h5ad")
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "NAN", "-nan", "null", "NULL", "None", "#N/A", "<NA>"})
SHOWN = 5  # offending lines or ids listed in a message


def _field(value, limit: int = 40) -> str:
    """An offending field as an error message quotes it: its repr, cut to ``limit`` characters, so that a
    message never carries more of a file than the start of the field it points at."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value)):,} characters)"


class DatasetFormatError(ValueError):
    """A plug-in file breaks the format; the message names the file, the line or column, and what was expected."""


def _lines(numbers) -> str:
    numbers = [int(n) for n in numbers]
    more = f" (and {len(numbers) - SHOWN} more)" if len(numbers) > SHOWN else ""
    return f"line{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers[:SHOWN]))}{more}"


def _examples(values) -> str:
    values = list(values)
    more = f" (and {len(values) - SHOWN} more)" if len(values) > SHOWN else ""
    return ", ".join(repr(v) for v in values[:SHOWN]) + more


# ---------------------------------------------------------------------------------------------- files


def resolve_files(spec: dict, tables: tuple[str, ...] = TABLES, required: tuple[str, ...] = ("response",),
                  label: str = "data set") -> dict[str, Path]:
    """The data set's files: ``response``, each view, and ``cell_lines`` / ``drugs`` when present.

    A key under ``spec["files"]`` names its file in the folder; otherwise ``<key>.csv`` or ``<key>.tsv``
    (views also ``<key>.h5ad``) is looked up, and exactly one of them must exist. ``tables`` are the
    tables looked up besides the views (``.csv`` / ``.tsv`` only), ``required`` those of them that must
    exist (looked up before the views; the others after them, and left out when absent); ``label`` names
    the folder in messages. The defaults are a plug-in data set's; drp.samples_io resolves sample sets.
    """
    folder = Path(spec["folder"])
    if not folder.is_dir():
        raise DatasetFormatError(f"{folder}: the data set folder does not exist; expected a folder with response.csv "
                                 "and one file per view (datasets.<name>.folder, relative to the working directory)")
    named = spec.get("files") or {}
    entries = sorted(folder.iterdir())  # directories, FIFOs and dangling symlinks too: they are errors, not absent
    found = {}
    optional = tuple(table for table in tables if table not in required)
    for key in (*(table for table in tables if table in required), *spec["views"], *optional):
        suffixes = TABLE_SUFFIXES if key in tables else VIEW_SUFFIXES
        if key in named:
            path = folder / named[key]
            if not os.path.lexists(path):
                raise DatasetFormatError(f"{path}: no such file (named by files.{key}); the folder has: "
                                         f"{_listing(folder)}")
        else:
            candidates = sorted((p for p in entries if p.stem == key and p.suffix.lower() in suffixes),
                                key=lambda p: (suffixes.index(p.suffix.lower()), p.name))
            same = [p for p in candidates if sum(q.name.lower() == p.name.lower() for q in candidates) > 1]
            if same:
                raise DatasetFormatError(f"{folder}: {' and '.join(p.name for p in same)} differ only in case; "
                                         f"expected one file for {key!r} (remove one of them, or name the one to use "
                                         f"under files.{key})")
            if len(candidates) > 1:
                raise DatasetFormatError(f"{folder}: both {' and '.join(p.name for p in candidates)} exist; expected "
                                         f"one file for {key!r} (name the one to use under files.{key})")
            if not candidates:
                if key in optional:
                    continue
                what = "the response table" if key == "response" else f"the view {key!r}"
                raise DatasetFormatError(
                    f"{folder}: no file for {what}; expected {' or '.join(f'{key}{s}' for s in suffixes)} "
                    f"(or a file named under files.{key}); the folder has: {_listing(folder)}")
            path = candidates[0]
        # a name or symlink that leads out of the folder reads a file the user may not mean to share (and an
        # error message would quote it): only an absolute path under files.<key> says so on purpose
        real = path.resolve()
        if not (key in named and Path(named[key]).is_absolute()) and not real.is_relative_to(folder.resolve()):
            raise DatasetFormatError(f"{path}: leads to {real}, outside the {label} folder {folder.resolve()}; "
                                     f"expected a file in the folder (name an absolute path under files.{key} to "
                                     "read a file elsewhere on purpose)")
        _check_file(path, key, optional)
        if path.suffix.lower() not in suffixes:
            kinds = ".csv (comma-separated), .tsv (tab-separated)" + (" or .h5ad (AnnData)" if key not in tables else "")
            raise DatasetFormatError(f"{path}: unknown file format {path.suffix or '(no suffix)'!r} for {key!r}; "
                                     f"expected {kinds}")
        found[key] = path
    return found


def _file_kind(path: Path) -> str | None:
    """None for a readable regular file (or a symlink to one); otherwise what the path is, for a message."""
    try:
        mode = path.stat().st_mode  # follows symlinks
    except FileNotFoundError:
        if path.is_symlink():
            return f"a dangling symlink (to {os.readlink(path)}, which does not exist)"
        return "missing (no such file)"
    except OSError as error:  # a symlink loop, a folder without search permission, ...
        return f"unreadable ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None if os.access(path, os.R_OK) else "unreadable (permission denied)"
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device file")
    return f"a symlink to {kind}" if path.is_symlink() else kind


def _check_file(path: Path, key: str | None = None, optional: tuple[str, ...] = ("cell_lines", "drugs")) -> None:
    """A readable regular file, or an error saying what the path is instead; a FIFO is never opened.
    ``optional``: the keys that are optional tables (the others are the response table or a view)."""
    kind = _file_kind(path)
    if kind is None:
        return
    if key in optional:
        what = f"the optional {key} table as a file (or no {path.name} at all)"
    elif key is not None:
        what = "the response table as a file" if key == "response" else f"the view {key!r} as a file"
    else:
        what = "a file"
    raise DatasetFormatError(f"{path}: {kind}, not a readable regular file; expected {what}")


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())
    return _examples(names) if names else "nothing"


def _read_text(path: Path) -> str:
    """The file as text with '\\n' line ends: UTF-8, a UTF-8 byte-order mark dropped; a lone '\\r' is an error."""
    _check_file(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetFormatError(f"{path}: cannot be read ({error.strerror or error}); expected a readable "
                                 "file") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DatasetFormatError(f"{path}: the file is UTF-16 encoded (it starts with a UTF-16 byte-order mark); "
                                 "expected UTF-8: save it as 'CSV UTF-8' or convert it, e.g. with "
                                 "iconv -f UTF-16 -t UTF-8")
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark, as Excel writes it: harmless
    if b"\x00" in raw:
        line = raw[:raw.index(b"\x00")].count(b"\n") + 1
        raise DatasetFormatError(f"{path}: line {line}: NUL byte; expected UTF-8 text (is the file UTF-16 "
                                 "without a byte-order mark, or not a text file?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise DatasetFormatError(f"{path}: line {line}: byte 0x{raw[error.start]:02x} is not UTF-8; expected "
                                 "UTF-8 text (save the file as UTF-8)") from None
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        _fail_carriage_returns(path, text)
    return text


def _fail_carriage_returns(path: Path, text: str):
    """Lone carriage returns: classic Mac OS line ends (CR only) or stray ones inside lines."""
    n_returns, n_newlines = text.count("\r"), text.count("\n")
    if n_returns > n_newlines:
        raise DatasetFormatError(
            f"{path}: lines end with a carriage return only (classic Mac OS line ends, e.g. Excel's "
            "'CSV (Macintosh)'); expected \\n or \\r\\n line ends: re-save the file as 'CSV UTF-8', or convert it, "
            f"e.g. with tr '\\r' '\\n' < {path.name} > fixed{path.suffix}")
    lines, start, line = [], 0, 1
    while (position := text.find("\r", start)) >= 0:
        line += text.count("\n", start, position)
        if not lines or lines[-1] != line:
            lines.append(line)
        start = position + 1
    raise DatasetFormatError(
        f"{path}: {_lines(lines)}: stray carriage return (\\r) inside the line{'s' if len(lines) > 1 else ''} "
        "(an editor may show it as ^M or break the line there); expected \\r only as part of a \\r\\n line end: "
        f"remove it, e.g. with tr -d '\\r' < {path.name} > fixed{path.suffix}")


class _Table:
    """A delimited text file checked line by line: header, field counts, line number of every record.

    ``header`` holds the columns that are read: empty unnamed columns at the end of the header (Excel writes
    them for formatted empty cells) are dropped; ``n_fields`` counts every field of a line, dropped ones too.
    """

    def __init__(self, path: Path, what: str):
        self.path = path
        self.sep = SEPARATORS[path.suffix.lower()]
        text = _read_text(path)
        lines = text.split("\n")
        while lines and not lines[-1].strip():  # trailing empty lines are harmless
            lines.pop()
        if not lines:
            raise DatasetFormatError(f"{path}: the file is empty; expected a header line ({what}) and data rows")
        self.quoted = any('"' in line for line in lines)
        header = self._parse_header(lines[0], what)
        if len(lines) == 1:
            raise DatasetFormatError(f"{path}: only a header line; expected data rows below it")
        self.n_fields = len(header)
        named = max((number for number, name in enumerate(header, start=1) if name), default=len(header))
        self.record_lines, filled = self._check_records(lines, named)
        self.header = self._drop_empty_trailing(header, named, filled)
        self.text = "\n".join(lines)

    def _parse_header(self, line: str, what: str) -> list[str]:
        try:
            header = [name.strip() for name in next(csv.reader([line], delimiter=self.sep))]
        except csv.Error as error:
            raise self._parse_error(error, 1) from None
        if len(header) == 1:
            other = next((s for s in SEPARATOR_NAMES if s != self.sep and s in line), None)
            if other is not None:
                hint = {"\t": " or rename the file to .tsv", ",": " or rename the file to .csv"}.get(other, "")
                raise DatasetFormatError(
                    f"{self.path}: line 1 (header) is separated by {SEPARATOR_NAMES[other]}, not "
                    f"{SEPARATOR_NAMES[self.sep]}; expected {SEPARATOR_NAMES[self.sep]} in a "
                    f"{self.path.suffix} file: re-save it with {SEPARATOR_NAMES[self.sep]}{hint}")
        seen: dict[str, list[int]] = {}
        for number, name in enumerate(header, start=1):
            if name:  # unnamed columns: see _drop_empty_trailing
                seen.setdefault(name, []).append(number)
        repeated = {name: numbers for name, numbers in seen.items() if len(numbers) > 1}
        if repeated:
            listed = "; ".join(f"{name!r} (columns {', '.join(map(str, numbers))})" for name, numbers in repeated.items())
            raise DatasetFormatError(f"{self.path}: line 1 (header): duplicate column names {listed}; expected "
                                     "each column name once")
        return header

    def _drop_empty_trailing(self, header: list[str], named: int, filled: set[int]) -> list[str]:
        """The header without the unnamed columns after the last named one that are empty on every line;
        two or more unnamed columns left (with data, or between named ones) are an error."""
        keep = max(filled | {named})
        if keep < len(header):
            log.info("%s: dropped %d empty column%s without a name at the end of line 1 (header): columns %s",
                     self.path, len(header) - keep, "s" if len(header) - keep > 1 else "",
                     ", ".join(map(str, range(keep + 1, len(header) + 1))))
        header = header[:keep]
        unnamed = [number for number, name in enumerate(header, start=1) if not name]
        if len(unnamed) > 1:
            raise DatasetFormatError(f"{self.path}: line 1 (header): columns {', '.join(map(str, unnamed))} have no "
                                     "name; expected a name above every column that holds data (empty unnamed "
                                     "columns at the end of the header are dropped)")
        return header

    def _parse_error(self, error: csv.Error, line: int) -> DatasetFormatError:
        if "field larger than field limit" in str(error):
            return self._too_long(line)
        return DatasetFormatError(f"{self.path}: line {line}: cannot be parsed ({error}); expected fields separated "
                                  f"by {SEPARATOR_NAMES[self.sep]}, quoted with \" where they hold one")

    def _too_long(self, line: int) -> DatasetFormatError:
        hint = (": is a quote (\") on this line left unclosed, so that the rest of the file reads as one field?"
                if self.quoted else "")
        return DatasetFormatError(f"{self.path}: line {line}: a field longer than {csv.field_size_limit():,} "
                                  f"characters (the CSV parser's limit); expected shorter fields{hint}")

    def _check_records(self, lines: list[str], named: int) -> tuple[list[int], set[int]]:
        """Line number of each data record, and which columns after the ``named`` first hold data on some line;
        blank lines, rows with another field count and over-long fields are errors."""
        expected = self.n_fields
        limit = csv.field_size_limit()  # the csv module's; the same limit whether or not the file has quotes
        starts, counts, filled = [], [], set()
        if not self.quoted:
            starts = list(range(2, len(lines) + 1))
            counts = [line.count(self.sep) + 1 if line.strip() else 0 for line in lines[1:]]
            for number, line in enumerate(lines, start=1):
                if len(line) > limit and max(map(len, line.split(self.sep))) > limit:
                    raise self._too_long(number)
            if named < expected:
                for line, count in zip(lines[1:], counts):
                    if count == expected:
                        fields = line.rsplit(self.sep, expected - named)[1:]
                        filled.update(named + j for j, field in enumerate(fields, start=1) if field.strip())
        else:  # quoted fields may hold separators or line breaks: let the csv module count
            reader = csv.reader(io.StringIO("\n".join(lines[1:])), delimiter=self.sep)
            previous = 0
            try:
                for row in reader:
                    starts.append(previous + 2)
                    counts.append(len(row) if any(field.strip() for field in row) or len(row) > 1 else 0)
                    if len(row) == expected and named < expected:
                        filled.update(named + j for j, field in enumerate(row[named:], start=1) if field.strip())
                    previous = reader.line_num
            except csv.Error as error:
                raise self._parse_error(error, previous + 2) from None
        blank = [line for line, count in zip(starts, counts) if count == 0]
        if blank:
            raise DatasetFormatError(f"{self.path}: {_lines(blank)} {'are' if len(blank) > 1 else 'is'} empty; "
                                     f"expected {expected} fields separated by "
                                     f"{SEPARATOR_NAMES[self.sep]} on every line up to the last")
        wrong = [(line, count) for line, count in zip(starts, counts) if count != expected]
        if wrong:
            shown = ", ".join(f"line {line} has {count} fields" for line, count in wrong[:SHOWN])
            more = f" (and {len(wrong) - SHOWN} more lines)" if len(wrong) > SHOWN else ""
            raise DatasetFormatError(f"{self.path}: {shown}{more}; expected {expected} fields separated by "
                                     f"{SEPARATOR_NAMES[self.sep]}, as in the header (line 1)")
        return starts, filled

    def require(self, columns: list[str]) -> None:
        missing = [c for c in columns if c not in self.header]
        if missing:
            raise DatasetFormatError(f"{self.path}: line 1 (header): missing column{'s' if len(missing) > 1 else ''} "
                                     f"{_examples(missing)}; expected {', '.join(columns)}; found {self.header}")

    def _read(self, **options) -> pd.DataFrame:
        """The records as pandas reads them, the columns of ``header`` only (numbered from 0)."""
        try:
            return pd.read_csv(io.StringIO(self.text), sep=self.sep, header=None, skiprows=1, skip_blank_lines=False,
                               names=range(self.n_fields), usecols=range(len(self.header)), **options)
        except pd.errors.ParserError as error:  # the checks above should leave nothing for pandas to refuse
            raise DatasetFormatError(f"{self.path}: cannot be parsed ({error}); expected fields separated by "
                                     f"{SEPARATOR_NAMES[self.sep]}") from None

    def strings(self) -> pd.DataFrame:
        """Every field as a stripped string, with the record's ``line`` number."""
        frame = self._read(dtype=str, keep_default_na=False, na_filter=False)
        frame.columns = self.header
        frame = frame.apply(lambda column: column.str.strip())
        frame["line"] = self.record_lines
        return frame

    def numbers(self) -> tuple[pd.Series, np.ndarray]:
        """The first column as ids and the rest as a float64 matrix (NaN where missing)."""
        # ids as text, never NA (a cell line named "NA" or "None" is an id); the usual NA spellings, empty
        # fields included, are missing values in the value columns only
        missing = sorted(pd._libs.parsers.STR_NA_VALUES)
        frame = self._read(dtype={0: str}, low_memory=False, keep_default_na=False,
                           na_values={column: missing for column in range(1, len(self.header))})
        values = frame.iloc[:, 1:]
        matrix = np.empty(values.shape, dtype=np.float64)
        for index, column in enumerate(values.columns):
            if values[column].dtype.kind not in "biuf":
                parsed = _parse_numbers(values[column])
                bad = np.flatnonzero(parsed.isna().to_numpy() & values[column].notna().to_numpy())
                if len(bad):
                    self.fail_non_numeric(bad, values[column], index + 2)
                matrix[:, index] = parsed.to_numpy()
            else:
                if values[column].dtype.kind == "b":  # pandas reads TRUE/FALSE as booleans: say so
                    log.warning("%s: column %d (%r) holds TRUE/FALSE values; read as 1/0", self.path, index + 2,
                                self.header[index + 1])
                matrix[:, index] = values[column].to_numpy(dtype=np.float64)
        ids = frame[0].fillna("").str.strip()
        return ids, matrix

    def fail_non_numeric(self, rows, column: pd.Series, position: int):
        shown = ", ".join(f"line {self.record_lines[r]}: {_field(column.iloc[r])}" for r in rows[:SHOWN])
        more = f" (and {len(rows) - SHOWN} more)" if len(rows) > SHOWN else ""
        raise DatasetFormatError(
            f"{self.path}: column {self.header[position - 1]!r} (column {position}): non-numeric "
            f"value{'s' if len(rows) > 1 else ''} ({shown}{more}); expected a number in every feature column"
            f"{_decimal_hint(column.iloc[rows[0]])}")


def _parse_numbers(texts: pd.Series) -> pd.Series:
    """Numbers as pandas parses them (NaN where not a number), except that a number beyond the float64 range
    (``1e999``), which pandas leaves unparsed, is the infinity it overflows to, so that it is called infinite."""
    parsed = pd.to_numeric(texts, errors="coerce").astype(np.float64)
    retry = parsed.isna() & texts.notna()
    if retry.any():
        parsed[retry] = texts[retry].map(_overflow)
    return parsed


def _overflow(text) -> float:
    """±inf for a number too large for a float64, NaN for anything else."""
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        return np.nan
    return value if np.isinf(value) and "_" not in text else np.nan


def _decimal_hint(value) -> str:
    text = str(value)
    if "," in text and text.replace(",", "", 1).replace("-", "", 1).replace(".", "", 1).isdigit():
        return " (a decimal comma? use a decimal point)"
    return ""


# --------------------------------------------------------------------------------------------- tables


def read_response(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``cell_line, drug, response`` (one row per pair) and the tissue each row gives (``cell_line, tissue, line``)."""
    table = _Table(path, "cell_line, drug, response and optionally tissue")
    table.require(REQUIRED_COLUMNS["response"])
    frame = table.strings()
    for column in ("cell_line", "drug"):
        empty = frame.line[frame[column] == ""]
        if len(empty):
            raise DatasetFormatError(f"{path}: column {column!r}: empty id on {_lines(empty)}; expected a "
                                     f"{column.replace('_', ' ')} id on every line")
    raw = frame["response"]
    missing = raw.isin(MISSING)
    if missing.any():
        raise DatasetFormatError(f"{path}: column 'response': missing value (empty or NA) on "
                                 f"{_lines(frame.line[missing])}; expected a number on every line (leave out "
                                 "pairs that were not measured)")
    values = _parse_numbers(raw)
    bad = values.isna()
    if bad.any():
        shown = ", ".join(f"line {line}: {_field(value)}" for line, value in zip(frame.line[bad][:SHOWN], raw[bad][:SHOWN]))
        more = f" (and {int(bad.sum()) - SHOWN} more)" if bad.sum() > SHOWN else ""
        raise DatasetFormatError(f"{path}: column 'response': non-numeric value{'s' if bad.sum() > 1 else ''} "
                                 f"({shown}{more}); expected a number{_decimal_hint(raw[bad].iloc[0])}")
    infinite = np.isinf(values)
    if infinite.any():
        written = raw[infinite]
        overflowing = written[~written.str.lower().str.lstrip("+-").isin({"inf", "infinity"})]
        beyond = (f" ({_examples(overflowing.unique())} {'is' if overflowing.nunique() == 1 else 'are'} beyond the "
                  "range of a 64-bit float)") if len(overflowing) else ""
        raise DatasetFormatError(f"{path}: column 'response': infinite value on {_lines(frame.line[infinite])}"
                                 f"{beyond}; expected a finite number (was a log taken of 0?)")
    frame["response"] = raw.astype(np.float64)  # Python's parser: exact round trip of what was written

    pairs = frame.groupby(["cell_line", "drug"], sort=False)
    conflicting = pairs["response"].transform("nunique") > 1
    if conflicting.any():
        first = frame[conflicting].iloc[0]
        same = frame[(frame.cell_line == first.cell_line) & (frame.drug == first.drug)]
        n_pairs = frame[conflicting].groupby(["cell_line", "drug"]).ngroups
        raise DatasetFormatError(
            f"{path}: {n_pairs} (cell_line, drug) pair{'s' if n_pairs > 1 else ''} with different responses, e.g. "
            f"({first.cell_line!r}, {first.drug!r}) on {_lines(same.line)} with {_examples(same.response)}; "
            "expected one row per pair: aggregate replicates first (e.g. the mean, or the geometric mean of IC50s)")
    repeated = frame.duplicated(["cell_line", "drug"])
    if repeated.any():
        log.warning("%s: %d exact duplicate rows collapsed (%s)", path, int(repeated.sum()), _lines(frame.line[repeated]))

    tissue = frame[["cell_line", "tissue", "line"]] if "tissue" in frame else None
    response = frame.loc[~repeated, ["cell_line", "drug", "response"]].reset_index(drop=True)
    return response, tissue


def read_cell_lines(path: Path, columns: tuple[str, ...] = tuple(REQUIRED_COLUMNS["cell_lines"])) -> pd.DataFrame:
    """Annotations indexed by cell line (strings), with the ``line`` of each. ``columns``: the names the id
    column may have, in order of preference (a sample set's annotations: ``sample`` or ``cell_line``); the
    index takes the name found."""
    table = _Table(path, f"{columns[0]}, optionally tissue and other annotations")
    column = next((name for name in columns if name in table.header), None)
    if column is None and len(columns) > 1:
        raise DatasetFormatError(f"{path}: line 1 (header): missing column {columns[0]!r}; expected the id column "
                                 f"named {' or '.join(map(repr, columns))}, optionally tissue and other annotations; "
                                 f"found {table.header}")
    if column is None:
        table.require(list(columns))
    frame = table.strings()
    _check_ids(path, frame, column)
    return frame.set_index(column)


def read_drugs(path: Path) -> pd.DataFrame:
    table = _Table(path, "drug, smiles")
    table.require(REQUIRED_COLUMNS["drugs"])
    frame = table.strings()
    _check_ids(path, frame, "drug")
    frame.loc[frame.smiles.isin(MISSING), "smiles"] = ""
    return frame[["drug", "smiles"]]


def _check_ids(path: Path, frame: pd.DataFrame, column: str) -> None:
    empty = frame.line[frame[column] == ""]
    if len(empty):
        raise DatasetFormatError(f"{path}: column {column!r}: empty id on {_lines(empty)}; expected an id on every line")
    repeated = frame[frame[column].duplicated(keep=False)]
    if len(repeated):
        first = repeated[column].iloc[0]
        raise DatasetFormatError(f"{path}: column {column!r}: {first!r} appears on "
                                 f"{_lines(repeated.line[repeated[column] == first])}"
                                 f"{' (and other ids more than once)' if repeated[column].nunique() > 1 else ''}; "
                                 f"expected each {column.replace('_', ' ')} once")


# ---------------------------------------------------------------------------------------------- views


def read_view(path: Path, unit: str = "cell line") -> tuple[np.ndarray, pd.Index, pd.Index]:
    """(cell lines x features matrix, cell-line ids, feature names) of one view file, all values finite.
    ``unit`` names what a row is in messages (a sample set's views: "sample")."""
    if path.suffix.lower() == ".h5ad":
        _check_file(path)
        return _read_h5ad_view(path, unit)
    hyphened = unit.replace(" ", "-")
    table = _Table(path, f"the {hyphened} id column, then one column per feature")
    if len(table.header) < 2:
        raise DatasetFormatError(f"{path}: line 1 (header) has one column; expected the {hyphened} id column "
                                 "followed by one column per feature")
    empty = [number for number, name in enumerate(table.header[1:], start=2) if name == ""]
    if empty:
        raise DatasetFormatError(f"{path}: line 1 (header): column{'s' if len(empty) > 1 else ''} "
                                 f"{', '.join(map(str, empty))} ha{'ve' if len(empty) > 1 else 's'} no name; "
                                 "expected a feature name above every column but the first")
    ids, matrix = table.numbers()
    lines = np.asarray(table.record_lines)
    empty_ids = lines[(ids == "").to_numpy()]
    if len(empty_ids):
        raise DatasetFormatError(f"{path}: column 1 ({hyphened} ids): empty id on {_lines(empty_ids)}; expected "
                                 f"a {hyphened} id in the first column of every line")
    repeated = ids.duplicated(keep=False).to_numpy()
    if repeated.any():
        first = ids[repeated].iloc[0]
        raise DatasetFormatError(f"{path}: column 1 ({hyphened} ids): {first!r} appears on "
                                 f"{_lines(lines[(ids == first).to_numpy()])}; expected one row per {unit}")
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DatasetFormatError(
            f"{path}: {_non_finite_counts(matrix)}, the first on line {lines[row]}, column "
            f"{table.header[col + 1]!r}; expected a finite number in every cell (impute, or drop the feature or "
            f"{unit}, before plugging the view in)")
    return matrix, pd.Index(ids.to_numpy(dtype=str)), pd.Index(table.header[1:])


def _non_finite_counts(matrix: np.ndarray) -> str:
    n_missing, n_infinite = int(np.isnan(matrix).sum()), int(np.isinf(matrix).sum())
    parts = [f"{n_missing} missing (empty, NA or NaN)"] if n_missing else []
    parts += [f"{n_infinite} infinite"] if n_infinite else []
    return " and ".join(parts) + " value" + ("s" if n_missing + n_infinite > 1 else "")


def _read_h5ad_view(path: Path, unit: str = "cell line") -> tuple[np.ndarray, pd.Index, pd.Index]:
    try:
        view = canonical.read_view(path)  # anndata, imported there on first use
    except Exception as error:  # h5py and anndata raise many kinds; all mean the same to the user
        raise DatasetFormatError(f"{path}: cannot be read as AnnData ({type(error).__name__}: {error}); expected "
                                 "an .h5ad file written by anndata") from None
    if view.X is None or view.n_vars == 0 or view.n_obs == 0:
        raise DatasetFormatError(f"{path}: X is empty ({view.n_obs} x {view.n_vars}); expected {unit}s x "
                                 "features in X")
    import scipy.sparse

    matrix = view.X.toarray() if scipy.sparse.issparse(view.X) else np.asarray(view.X)
    if matrix.dtype.kind not in "biuf":
        raise DatasetFormatError(f"{path}: X has dtype {matrix.dtype}; expected numbers")
    matrix = matrix.astype(np.float64)
    ids = pd.Index(view.obs_names.astype(str).str.strip())
    features = pd.Index(view.var_names.astype(str))
    for index, axis in ((ids, f"obs_names ({unit}s)"), (features, "var_names (features)")):
        if (index == "").any():
            raise DatasetFormatError(f"{path}: {axis}: empty name at position {int(np.argmax(index == '')) + 1}; "
                                     "expected a name for every entry")
        if index.has_duplicates:
            raise DatasetFormatError(f"{path}: {axis}: duplicate names {_examples(index[index.duplicated()].unique())}; "
                                     "expected unique names")
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DatasetFormatError(f"{path}: X has {_non_finite_counts(matrix)}, the first at obs {ids[row]!r}, var "
                                 f"{features[col]!r}; expected finite numbers (impute, or drop the feature or "
                                 f"{unit}, first)")
    return matrix, ids, features


# ---------------------------------------------------------------------------------------------- build


def _tissues(response_tissue: pd.DataFrame | None, annotations: pd.DataFrame | None, files: dict) -> pd.Series:
    """One tissue per cell line (empty values ignored) from response.csv and/or cell_lines.csv."""
    sources = []
    if response_tissue is not None:
        sources.append((files["response"], response_tissue))
    if annotations is not None and "tissue" in annotations:
        sources.append((files["cell_lines"], annotations.reset_index()[["cell_line", "tissue", "line"]]))
    if not sources:
        return pd.Series(dtype=str)
    rows = pd.concat([table.assign(file=str(path)) for path, table in sources])
    rows = rows[rows.tissue != ""]
    conflicting = rows.groupby("cell_line")["tissue"].transform("nunique") > 1
    if conflicting.any():
        cell = rows[conflicting].cell_line.iloc[0]
        where = rows[rows.cell_line == cell].drop_duplicates(["file", "tissue"])
        said = "; ".join(f"{row.tissue!r} in {row.file} line {row.line}" for row in where.itertuples())
        raise DatasetFormatError(f"cell line {cell!r} has more than one tissue: {said}; expected one tissue per "
                                 "cell line")
    return rows.drop_duplicates("cell_line").set_index("cell_line")["tissue"]


def _with_every_view(response: pd.DataFrame, views: dict, files: dict, provenance: dict) -> pd.DataFrame:
    """The responses of cell lines that have a row in every view; a view sharing none with them is an error."""
    measured = set(response.cell_line)
    provenance["cell_lines_without_view"] = {}
    for view, (_, ids, features) in views.items():
        common = measured & set(ids)
        if not common and measured & set(features):
            raise DatasetFormatError(f"{files[view]}: the cell lines of {files['response'].name} are its columns, e.g. "
                                     f"{_examples(sorted(measured & set(features))[:3])}; expected one row per cell "
                                     "line (transpose the table)")
        if not common:
            raise DatasetFormatError(
                f"{files[view]}: no cell line in common with {files['response'].name}; expected the same ids "
                f"(the view has e.g. {_examples(sorted(ids)[:3])}, the response e.g. {_examples(sorted(measured)[:3])})")
        without = measured - common
        provenance["cell_lines_without_view"][view] = len(without)
        if without:
            log.warning("%s: %d of the %d cell lines with responses have no row in %s and are dropped, e.g. %s",
                        files["response"], len(without), len(measured), files[view].name, _examples(sorted(without)))
    keep = measured.intersection(*(set(ids) for _, ids, _ in views.values()))
    if not keep:
        raise DatasetFormatError(f"{files['response']}: no cell line has a response and a row in every view "
                                 f"({', '.join(files[v].name for v in views)}); expected at least one")
    return response[response.cell_line.isin(keep)]


def _drop_drugs(response: pd.DataFrame, smiles: dict, spec: dict, files: dict, provenance: dict) -> pd.DataFrame:
    """Drop drugs without a SMILES (if ``drugs_require_smiles``) and drugs on too few cell lines for the split;
    an error if no drug is left."""
    if spec.get("drugs_require_smiles", False):
        without = sorted(set(response.drug) - {drug for drug, text in smiles.items() if text})
        if len(without) == response.drug.nunique():
            raise DatasetFormatError(f"{files.get('drugs', files['response'].parent / 'drugs.csv')}: no drug of the "
                                     "response table has a SMILES; expected drug, smiles rows (or set "
                                     "drugs_require_smiles: false)")
        if without:
            log.warning("dropped %d drugs without a SMILES (drugs_require_smiles): %s", len(without), _examples(without))
        response = response[~response.drug.isin(without)]
        provenance["drugs_dropped_without_smiles"] = without

    minimum = spec.get("min_cell_lines_per_drug", 20)
    counts = response.groupby("drug")["cell_line"].nunique()
    few = counts[counts < minimum].sort_values()
    if len(few) == len(counts):
        raise DatasetFormatError(
            f"{files['response']}: no drug has responses on at least {minimum} cell lines with every view "
            f"(min_cell_lines_per_drug); the most is {int(counts.max())} ({counts.idxmax()!r}); expected at least one "
            "drug with enough cell lines for the cross-validation split (or lower min_cell_lines_per_drug)")
    if len(few):
        log.warning("%s: dropped %d drugs with responses on fewer than %d cell lines (min_cell_lines_per_drug): %s",
                    files["response"], len(few), minimum, ", ".join(f"{d} ({n})" for d, n in few.items()))
    provenance["drugs_dropped_few_cell_lines"] = {str(d): int(n) for d, n in few.items()}
    return response[~response.drug.isin(few.index)]


def build_from_files(files: dict, spec: dict) -> Dataset:
    """The canonical data set from the files of ``resolve_files(spec)`` (the build rule's inputs)."""
    files = {key: Path(path) for key, path in files.items()}
    response, response_tissue = read_response(files["response"])
    annotations = read_cell_lines(files["cell_lines"]) if "cell_lines" in files else None
    drugs = read_drugs(files["drugs"]) if "drugs" in files else pd.DataFrame({"drug": [], "smiles": []})
    tissue = _tissues(response_tissue, annotations, files)
    views = {view: read_view(files[view]) for view in spec["views"]}

    provenance = {"folder": str(Path(spec["folder"]).resolve()), "response_rows": int(len(response)),
                  "files": {key: {"name": path.name, "sha256": sha256sum(path)} for key, path in files.items()}}
    smiles = dict(zip(drugs.drug, drugs.smiles))
    response = _with_every_view(response, views, files, provenance)
    response = _drop_drugs(response, smiles, spec, files, provenance)
    response = response.sort_values(["cell_line", "drug"]).reset_index(drop=True)

    cell_lines = sorted(set(response.cell_line))
    obs = pd.DataFrame(index=pd.Index(cell_lines, name="cell_line"))
    if annotations is not None:
        obs = obs.join(annotations.drop(columns=["tissue", "line"], errors="ignore")).fillna("")
    obs.insert(0, "tissue", tissue.reindex(cell_lines).fillna(UNKNOWN_TISSUE).to_numpy())
    provenance["cell_lines_without_tissue"] = int((obs["tissue"] == UNKNOWN_TISSUE).sum())
    canonical = {view: make_view(matrix[ids.get_indexer(cell_lines)], cell_lines, features, obs)
                 for view, (matrix, ids, features) in views.items()}
    drug_names = sorted(set(response.drug))
    drug_table = pd.DataFrame({"drug": drug_names, "smiles": [smiles.get(d, "") for d in drug_names]})
    dataset = Dataset(views=canonical, response=response, drugs=drug_table, measure=spec["measure"],
                      lower_is_sensitive=bool(spec["lower_is_sensitive"]), provenance=provenance)
    dataset.validate()
    log.info("built the plug-in data set in %s: %s", spec["folder"], dataset.summary())
    return dataset
