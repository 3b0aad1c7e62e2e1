"""Load customers from a CSV file: check every row first, then write them in batches.

The columns are documented in ``docs/import.md``. A row is one customer with their phone
numbers and, optionally, one licence, one purchase of updates and one subscription; a
customer with several purchases appears on several rows with the same ``customer_number``.

The first pass streams the file, checks each row, and keeps the checked, normalised rows in
a private staging database (a temporary SQLite file). Memory therefore stays flat however
large the file is, and the checks across rows (a number claimed by two customers) are SQL
queries rather than ever-growing Python sets. If any row is bad nothing is written, unless
``skip_bad`` is set. The second pass streams the staged rows grouped by customer and
upserts them in batches. Each batch is its own transaction: the call flow keeps writing
calls while a large import runs, and an interrupted import is finished by running it again.

Importing adds and updates; it never deletes. Importing the same file twice changes
nothing the second time. A number or licence that the file gives to another customer than
the database does moves to the customer in the file.
"""

from __future__ import annotations

import csv
import itertools
import logging
import re
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Connection, Engine, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from tqdm import tqdm

from onerpa.changes import mark_changed
from onerpa.models import Base
from onerpa.phone import normalize
from onerpa.startup import load_settings, open_database

log = logging.getLogger(__name__)

MOSCOW = ZoneInfo("Europe/Moscow")
COLUMNS = (
    "customer_number",
    "organisation",
    "contact_name",
    "email",
    "phones",
    "product",
    "licence_number",
    "purchased_on",
    "updates_purchased_on",
    "updates_months",
    "subscription_service",
    "subscription_starts_on",
    "subscription_ends_on",
    "subscription_cancelled_at",
)
REQUIRED_COLUMNS = ("customer_number", "organisation")
DEFAULT_UPDATE_MONTHS = 12
MAX_PHONES_PER_ROW = 20
# Customers per write transaction: big enough to amortise round trips, small enough that
# a transaction never holds the SQLite write lock for long.
BATCH_CUSTOMERS = 2000
STAGE_BATCH_ROWS = 5000
# Below this size an import takes a moment and a progress bar is only noise.
PROGRESS_MIN_BYTES = 1_000_000

_CUSTOMER_NUMBER = re.compile(r"\d{1,32}")
_LICENCE_NUMBER = re.compile(r"[0-9A-Za-zА-Яа-яЁё/_.-]{1,64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_RU_DATE = re.compile(r"(\d{2})\.(\d{2})\.(\d{4})")
_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*")
_PHONE_SEPARATORS = re.compile(r"[,;]")
_YEARS = range(1990, 2101)


class ImportFileError(Exception):
    """The file as a whole cannot be imported (not CSV, not UTF-8, wrong header)."""


@dataclass(frozen=True)
class RowError:
    """A bad row: its line in the file and what is wrong with it."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"строка {self.line}: {self.message}"


@dataclass(frozen=True)
class ImportResult:
    """What an import read, rejected and changed."""

    rows: int
    bad_rows: int
    written: bool
    changes: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class CustomerRow:
    """One checked row, phone numbers in E.164."""

    line: int
    customer_number: str
    organisation: str
    contact_name: str = ""
    email: str = ""
    phones: tuple[str, ...] = ()
    product: str | None = None
    licence_number: str | None = None
    purchased_on: date | None = None
    updates_purchased_on: date | None = None
    updates_months: int | None = None
    subscription_service: str | None = None
    subscription_starts_on: date | None = None
    subscription_ends_on: date | None = None
    subscription_cancelled_at: datetime | None = None


def import_file(
    engine: Engine,
    path: Path | str,
    *,
    skip_bad: bool = False,
    report: Callable[[RowError], None] | None = None,
    progress: bool | None = None,
) -> ImportResult:
    """Check every row of ``path``; write the customers unless a row is bad or ``skip_bad``.

    ``report`` receives each bad row in line order. ``progress`` None shows bars only on a
    terminal and for large files.
    """
    path = Path(path)
    show = _show_progress(path, progress)
    with tempfile.TemporaryDirectory(prefix="onerpa-import-") as tmp:
        staging = _Staging(Path(tmp) / "staging.sqlite3")
        try:
            rows = _check_file(path, staging, show)
            staging.cross_check()
            bad = _report(staging, report)
            if bad and not skip_bad:
                log.info("import of %s: %s bad rows of %s, nothing written", path, bad, rows)
                return ImportResult(rows, bad, written=False)
            changes = write_customers(engine, staging.customers(), staging.count(show), show)
        finally:
            staging.close()
    log.info("import of %s: %s rows, %s skipped, changes %s", path, rows, bad, dict(changes))
    return ImportResult(rows, bad, written=True, changes=changes)


# --- reading and checking ---------------------------------------------------------------


def _show_progress(path: Path, progress: bool | None) -> bool:
    if progress is not None:
        return progress
    try:
        size = path.stat().st_size
    except OSError:
        return False
    return sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES


def _check_file(path: Path, staging: _Staging, show: bool) -> int:
    """Check every row of ``path`` into ``staging``; return the number of data rows."""
    try:
        stream = path.open("rb")
    except OSError as err:
        raise ImportFileError(f"не удаётся прочитать {path}: {err.strerror}") from None
    size = path.stat().st_size
    with stream, _bar(show, total=size, unit="B", unit_scale=True, desc="checking") as bar:
        lines = _decoded_lines(stream, bar)
        header = next(lines, None)
        if header is None or not header.strip():
            raise ImportFileError("файл пуст (первая строка — заголовок с именами столбцов)")
        delimiter = ";" if header.count(";") >= header.count(",") else ","
        columns = _columns(next(csv.reader([header], delimiter=delimiter)))
        rows = _check_rows(lines, delimiter, columns, staging)
    if rows == 0:
        raise ImportFileError("в файле есть заголовок, но нет строк")
    return rows


def _bar(show: bool, **options: Any) -> tqdm:
    """Return a progress bar on standard error, or one that draws nothing."""
    return tqdm(file=sys.stderr, disable=not show, **options)


def _decoded_lines(stream: IO[bytes], bar: tqdm) -> Iterator[str]:
    """Yield the file's lines as text, the byte-order mark dropped; stop at bytes not UTF-8."""
    for number, raw in enumerate(stream, start=1):
        bar.update(len(raw))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ImportFileError(
                f"строка {number}: не UTF-8 (байт {raw[err.start]:#04x}); сохраните файл в UTF-8"
            ) from None
        yield text.removeprefix("\ufeff") if number == 1 else text


def _columns(header: list[str]) -> list[str]:
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise ImportFileError(
            f"строка 1: неизвестные столбцы {', '.join(map(repr, unknown))}; "
            f"столбцы: {', '.join(COLUMNS)}"
        )
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        raise ImportFileError(f"строка 1: столбцы указаны дважды: {', '.join(doubled)}")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise ImportFileError(f"строка 1: нет обязательных столбцов: {', '.join(missing)}")
    return names


def _check_rows(lines: Iterator[str], delimiter: str, columns: list[str], staging: _Staging) -> int:
    reader = csv.reader(lines, delimiter=delimiter)
    rows = 0
    good: list[CustomerRow] = []
    bad: list[RowError] = []
    end = 1  # the header was line 1; the reader counts only the lines it reads itself
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num + 1
            if not any(value.strip() for value in fields):
                continue  # blank lines are not rows
            rows += 1
            checked = check_row(start, columns, fields)
            if isinstance(checked, RowError):
                bad.append(checked)
            else:
                good.append(checked)
            if len(good) + len(bad) >= STAGE_BATCH_ROWS:
                staging.add(good, bad)
                good, bad = [], []
    except csv.Error as err:
        raise ImportFileError(f"строка {end + 1}: не CSV: {err}") from None
    staging.add(good, bad)
    return rows


def check_row(line: int, columns: list[str], fields: list[str]) -> CustomerRow | RowError:
    """Check one record against the rules in docs/import.md."""
    if len(fields) != len(columns):
        return RowError(line, f"ожидалось полей: {len(columns)}, найдено: {len(fields)}")
    check = FieldChecker(dict(zip(columns, fields, strict=True)))
    row = CustomerRow(
        line=line,
        **check.customer(),
        phones=check.phones("phones"),
        **check.licence(),
        **check.updates(),
        **check.subscription(),
    )
    if check.problems:
        return RowError(line, "; ".join(map(str, check.problems)))
    return row


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field: the field as the sender names it, and why, in Russian."""

    field: str
    text: str

    def __str__(self) -> str:
        return f"{self.field}: {self.text}"


class FieldChecker:
    """Check the fields of a customer record by the rules of docs/import.md.

    The one validator of customer data: the CSV import gives it a row's text fields, the
    sync API the fields of its JSON (``dashboard/api.py``), so both refuse the same values
    with the same words. ``values`` are keyed by the CSV column names; ``names`` says how
    the sender calls a field when that differs (``licences[0].product`` for ``product``), and
    every message names fields that way. Every problem is collected, not just the first.
    """

    def __init__(
        self,
        values: Mapping[str, str],
        names: Mapping[str, str] | None = None,
        problems: list[Problem] | None = None,
    ) -> None:
        self.values = values
        self.names = names or {}
        self.problems: list[Problem] = [] if problems is None else problems

    def raw(self, name: str) -> str:
        return self.values.get(name, "").strip()

    def label(self, name: str) -> str:
        return self.names.get(name, name)

    def fail(self, name: str, problem: str) -> None:
        self.problems.append(Problem(self.label(name), problem))

    def customer(self) -> dict[str, Any]:
        """Check the customer's number, organisation, contact and e-mail."""
        return {
            "customer_number": self.matching(
                "customer_number", _CUSTOMER_NUMBER, "не от 1 до 32 цифр"
            ),
            "organisation": self.text("organisation", 300, required=True),
            "contact_name": self.text("contact_name", 200),
            "email": self.email("email"),
        }

    def text(self, name: str, limit: int, *, required: bool = False) -> str:
        value = self.raw(name)
        if required and not value:
            self.fail(name, "не заполнено")
        elif len(value) > limit:
            self.fail(name, f"длиннее {limit} символов")
        elif _CONTROL.search(value):
            self.fail(name, "содержит управляющие символы")
        return value

    def matching(self, name: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.raw(name)
        if not value:
            self.fail(name, "не заполнено")
        elif not pattern.fullmatch(value):
            self.fail(name, f"{value[:40]!r} — {what}")
        return value

    def optional(self, name: str, pattern: re.Pattern[str], what: str) -> str | None:
        return self.matching(name, pattern, what) if self.raw(name) else None

    def email(self, name: str) -> str:
        value = self.text(name, 254)
        if value and not _EMAIL.fullmatch(value):
            self.fail(name, f"{value[:40]!r} — не адрес электронной почты")
        return value

    def phones(self, name: str) -> tuple[str, ...]:
        """Check a field of numbers separated by ``,`` or ``;``."""
        return self.phone_list(name, _PHONE_SEPARATORS.split(self.raw(name)))

    def phone_list(self, name: str, given: Iterable[str]) -> tuple[str, ...]:
        """Check phone numbers in any usual writing; return them in E.164, each once."""
        items = [item.strip() for item in given]
        items = [item for item in items if item]
        if len(items) > MAX_PHONES_PER_ROW:
            self.fail(name, f"больше {MAX_PHONES_PER_ROW} номеров")
            return ()
        found: dict[str, None] = {}
        for item in items:
            e164 = normalize(item)
            if e164 is None:
                self.fail(name, f"{item[:40]!r} — не номер телефона")
            else:
                found[e164] = None
        return tuple(found)

    def day(self, name: str) -> date | None:
        value = self.raw(name)
        if not value:
            return None
        iso, ru = _ISO_DATE.fullmatch(value), _RU_DATE.fullmatch(value)
        try:
            if iso:
                parsed = date(int(iso[1]), int(iso[2]), int(iso[3]))
            elif ru:
                parsed = date(int(ru[3]), int(ru[2]), int(ru[1]))
            else:
                raise ValueError
        except ValueError:
            self.fail(name, f"{value[:40]!r} — не дата вида 2024-03-15 или 15.03.2024")
            return None
        if parsed.year not in _YEARS:
            self.fail(name, f"{value!r} — неправдоподобный год")
            return None
        return parsed

    def moment(self, name: str) -> datetime | None:
        value = self.raw(name)
        if not value or not _MOMENT.fullmatch(value):
            day = self.day(name)  # a bare date means the start of that day in Moscow
            return datetime.combine(day, time(0), MOSCOW) if day else None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(name, f"{value[:40]!r} — не дата и время вида 2025-03-01T12:00+03:00")
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=MOSCOW)

    def months(self, name: str) -> int | None:
        value = self.raw(name)
        if not value:
            return None
        if not value.isdigit() or not 1 <= int(value) <= 120:
            self.fail(name, f"{value[:40]!r} — не число месяцев от 1 до 120")
            return None
        return int(value)

    def licence(self, *, required: bool = False) -> dict[str, Any]:
        """Check a licence; ``required``: the record is one, so it may not be empty."""
        product = self.text("product", 200)
        number = self.optional("licence_number", _LICENCE_NUMBER, "не номер лицензии")
        bought = self.day("purchased_on")
        if (product or number or required) and not self.raw("purchased_on"):
            self.fail("purchased_on", "не заполнено (у лицензии должна быть дата покупки)")
        if (bought or number or required) and not product:
            self.fail("product", "не заполнено (у лицензии должен быть продукт)")
        return {"product": product or None, "licence_number": number, "purchased_on": bought}

    def updates(self, *, required: bool = False) -> dict[str, Any]:
        """Check a purchase of updates; ``required``: the record is one."""
        bought = self.day("updates_purchased_on")
        months = self.months("updates_months")
        if (months is not None or required) and not self.raw("updates_purchased_on"):
            self.fail(
                "updates_purchased_on",
                f"не заполнено (его требует {self.label('updates_months')})",
            )
        if bought and months is None:
            months = DEFAULT_UPDATE_MONTHS
        return {"updates_purchased_on": bought, "updates_months": months}

    def subscription(self, *, required: bool = False) -> dict[str, Any]:
        """Check a subscription; ``required``: the record is one."""
        service = self.text("subscription_service", 200)
        starts = self.day("subscription_starts_on")
        ends = self.day("subscription_ends_on")
        cancelled = self.moment("subscription_cancelled_at")
        given = service or self.raw("subscription_ends_on") or cancelled or required
        if given and not self.raw("subscription_starts_on"):
            self.fail("subscription_starts_on", "не заполнено (у подписки должна быть дата начала)")
        if (starts or required) and not service:
            self.fail("subscription_service", "не заполнено (у подписки должен быть сервис)")
        if starts and ends and ends < starts:
            self.fail("subscription_ends_on", f"раньше {self.label('subscription_starts_on')}")
        return {
            "subscription_service": service or None,
            "subscription_starts_on": starts,
            "subscription_ends_on": ends,
            "subscription_cancelled_at": cancelled,
        }


def _report(staging: _Staging, report: Callable[[RowError], None] | None) -> int:
    """Hand every bad row to ``report`` in line order; return how many rows are bad."""
    for error in staging.errors():
        if report is not None:
            report(error)
    return staging.bad_rows()


# --- staging --------------------------------------------------------------------------------

_STAGED = ("line", *COLUMNS)
_SCHEMA = f"""
CREATE TABLE staged_rows ({", ".join(_STAGED)});
CREATE TABLE staged_phones (e164 TEXT, customer_number TEXT, line INTEGER);
CREATE TABLE row_errors (line INTEGER, message TEXT);
"""
_INDEXES = """
CREATE INDEX staged_rows_customer ON staged_rows (customer_number, line);
CREATE INDEX staged_rows_licence ON staged_rows (licence_number) WHERE licence_number IS NOT NULL;
CREATE INDEX staged_phones_e164 ON staged_phones (e164, customer_number);
CREATE INDEX row_errors_line ON row_errors (line);
"""
_BAD = "(SELECT line FROM row_errors)"


class _Staging:
    """A private SQLite file holding checked rows and errors between the two passes."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        # A scratch file: losing it in a crash loses nothing, so skip the journal.
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add(self, rows: list[CustomerRow], errors: list[RowError]) -> None:
        marks = ", ".join("?" * len(_STAGED))
        self.db.executemany(f"INSERT INTO staged_rows VALUES ({marks})", map(_staged, rows))
        self.db.executemany(
            "INSERT INTO staged_phones VALUES (?, ?, ?)",
            ((e164, row.customer_number, row.line) for row in rows for e164 in row.phones),
        )
        self.add_errors(errors)

    def add_errors(self, errors: Iterable[RowError]) -> None:
        self.db.executemany(
            "INSERT INTO row_errors VALUES (?, ?)", ((e.line, e.message) for e in errors)
        )
        self.db.commit()

    def cross_check(self) -> None:
        """Find what no single row shows: numbers, customers and licences that disagree."""
        self.db.executescript(_INDEXES)
        self.add_errors(_phone_conflicts(self.db))
        self.add_errors(_customer_conflicts(self.db))
        self.add_errors(_licence_conflicts(self.db))

    def errors(self) -> Iterator[RowError]:
        for line, message in self.db.execute("SELECT * FROM row_errors ORDER BY line, rowid"):
            yield RowError(line, message)

    def bad_rows(self) -> int:
        return self.db.execute("SELECT COUNT(DISTINCT line) FROM row_errors").fetchone()[0]

    def count(self, needed: bool) -> int | None:
        """Return how many customers the good rows hold (only when a progress bar needs it)."""
        if not needed:
            return None
        query = f"SELECT COUNT(DISTINCT customer_number) FROM staged_rows WHERE line NOT IN {_BAD}"
        return self.db.execute(query).fetchone()[0]

    def customers(self) -> Iterator[list[CustomerRow]]:
        """Yield the good rows of each customer together, in customer-number order."""
        cursor = self.db.execute(
            f"SELECT * FROM staged_rows WHERE line NOT IN {_BAD} ORDER BY customer_number, line"
        )
        rows = (_unstaged(values) for values in cursor)
        for _number, group in itertools.groupby(rows, key=lambda row: row.customer_number):
            yield list(group)


def _staged(row: CustomerRow) -> tuple[object, ...]:
    def iso(value: date | None) -> str | None:
        return value.isoformat() if value else None

    return (
        row.line,
        row.customer_number,
        row.organisation,
        row.contact_name,
        row.email,
        ",".join(row.phones),
        row.product,
        row.licence_number,
        iso(row.purchased_on),
        iso(row.updates_purchased_on),
        row.updates_months,
        row.subscription_service,
        iso(row.subscription_starts_on),
        iso(row.subscription_ends_on),
        iso(row.subscription_cancelled_at),
    )


def _unstaged(values: tuple[Any, ...]) -> CustomerRow:
    def day(value: str | None) -> date | None:
        return date.fromisoformat(value) if value else None

    (line, number, organisation, contact, email, phones, product, licence, bought) = values[:9]
    upd_on, upd_months, service, starts, ends, cancelled = values[9:]
    return CustomerRow(
        line,
        number,
        organisation,
        contact,
        email,
        tuple(phones.split(",")) if phones else (),
        product,
        licence,
        day(bought),
        day(upd_on),
        upd_months,
        service,
        day(starts),
        day(ends),
        datetime.fromisoformat(cancelled) if cancelled else None,
    )


def _phone_conflicts(db: sqlite3.Connection) -> Iterator[RowError]:
    cursor = db.execute(
        """SELECT e164, customer_number, line FROM staged_phones WHERE e164 IN (
               SELECT e164 FROM staged_phones GROUP BY e164
               HAVING COUNT(DISTINCT customer_number) > 1
           ) ORDER BY e164, line"""
    )
    for e164, group in itertools.groupby(cursor, key=lambda r: r[0]):
        claims = list(group)
        for _, customer, line in claims:
            others = ", ".join(
                f"у клиента {other} в строке {other_line}"
                for _, other, other_line in claims
                if other != customer
            )
            yield RowError(line, f"phones: {e164} указан также {others}")


def _customer_conflicts(db: sqlite3.Connection) -> Iterator[RowError]:
    cursor = db.execute(
        """SELECT r.line, f.line, r.organisation != f.organisation,
                  r.contact_name != f.contact_name, r.email != f.email
           FROM staged_rows r
           JOIN (SELECT customer_number, MIN(line) AS line FROM staged_rows
                 GROUP BY customer_number HAVING COUNT(*) > 1) m
             ON m.customer_number = r.customer_number
           JOIN staged_rows f ON f.line = m.line
           WHERE r.line != f.line AND (r.organisation != f.organisation
                 OR r.contact_name != f.contact_name OR r.email != f.email)"""
    )
    for line, first, *differs in cursor:
        fields = zip(("organisation", "contact_name", "email"), differs, strict=True)
        names = [name for name, differ in fields if differ]
        yield RowError(line, f"{', '.join(names)}: не как в строке {first} того же клиента")


def _licence_conflicts(db: sqlite3.Connection) -> Iterator[RowError]:
    cursor = db.execute(
        """SELECT r.line, r.licence_number, f.line
           FROM staged_rows r
           JOIN (SELECT licence_number, MIN(line) AS line FROM staged_rows
                 WHERE licence_number IS NOT NULL GROUP BY licence_number
                 HAVING COUNT(*) > 1) m ON m.licence_number = r.licence_number
           JOIN staged_rows f ON f.line = m.line
           WHERE r.line != f.line AND (r.customer_number != f.customer_number
                 OR r.product != f.product OR r.purchased_on != f.purchased_on)"""
    )
    for line, number, first in cursor:
        yield RowError(line, f"licence_number: {number} в строке {first} указан иначе")


# --- writing --------------------------------------------------------------------------------


def write_customers(
    engine: Engine,
    customers: Iterable[list[CustomerRow]],
    total: int | None = None,
    show: bool = False,
) -> Counter[str]:
    """Upsert customers (each given as its rows) in batches; return what changed."""
    changes: Counter[str] = Counter()
    with _bar(show, total=total, unit=" customers", desc="writing") as bar:
        for batch in _batches(customers, BATCH_CUSTOMERS):
            with engine.begin() as conn:
                changes += _write_batch(conn, batch)
            bar.update(len(batch))
    return changes


def _batches(items: Iterable[list[CustomerRow]], size: int) -> Iterator[list[list[CustomerRow]]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _write_batch(conn: Connection, batch: list[list[CustomerRow]]) -> Counter[str]:
    changes: Counter[str] = Counter()
    rows = [row for customer in batch for row in customer]
    customers = {row.customer_number: _details(row) for row in rows}
    _count(changes, "customers", _upsert(conn, _TABLES["customers"], "customer_number", customers))
    ids = _ids(conn, list(customers))
    phones = {e164: (ids[row.customer_number],) for row in rows for e164 in row.phones}
    added, moved = _upsert(conn, _TABLES["phone_numbers"], "e164", phones)
    changes.update(phones_added=added, phones_moved=moved)
    numbered = {
        row.licence_number: (ids[row.customer_number], row.product, row.purchased_on)
        for row in rows
        if row.licence_number
    }
    _count(changes, "licences", _upsert(conn, _TABLES["licences"], "licence_number", numbered))
    unnumbered = {
        (ids[row.customer_number], row.product, row.purchased_on)
        for row in rows
        if row.product and not row.licence_number
    }
    changes["licences_added"] += _add_missing(conn, _TABLES["licences"], _LICENCE, unnumbered)
    updates = {
        (
            ids[row.customer_number],
            row.updates_purchased_on,
            row.updates_months or DEFAULT_UPDATE_MONTHS,
        )
        for row in rows
        if row.updates_purchased_on
    }
    changes["updates_added"] += _add_missing(conn, _TABLES["update_purchases"], _UPDATES, updates)
    _upsert_subscriptions(conn, rows, ids, changes)
    if sum(changes.values()):
        # Per batch: a customer sent again unchanged next to changed ones is listed as
        # changed too; the sync API's changed_since may repeat one, never miss one.
        mark_changed(conn, ids.values(), datetime.now(UTC))
    return changes


_TABLES = Base.metadata.tables
_FIELDS = {
    "customers": ("organisation", "contact_name", "email"),
    "phone_numbers": ("customer_id",),
    "licences": ("customer_id", "product", "purchased_on"),
}
_LICENCE = ("customer_id", "product", "purchased_on")
_UPDATES = ("customer_id", "purchased_on", "months")
_SUBSCRIPTION = ("customer_id", "service", "starts_on", "ends_on", "cancelled_at")


def _details(row: CustomerRow) -> tuple[str, str, str]:
    return (row.organisation, row.contact_name, row.email)


def _count(changes: Counter[str], kind: str, added_updated: tuple[int, int]) -> None:
    changes.update({f"{kind}_added": added_updated[0], f"{kind}_updated": added_updated[1]})


def _dicts(fields: tuple[str, ...], values: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(fields, row, strict=True)) for row in values]


def _insert(conn: Connection) -> Any:
    """Return the dialect's INSERT, the one that knows ON CONFLICT."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _upsert(
    conn: Connection, table: Table, key: str, wanted: dict[Any, tuple[Any, ...]]
) -> tuple[int, int]:
    """Insert or update the rows whose unique ``key`` maps to other values; return counts.

    Rows that already hold the wanted values are not written at all, so importing the same
    file again writes nothing.
    """
    if not wanted:
        return 0, 0
    fields = _FIELDS[table.name]
    query = select(table.c[key], *(table.c[f] for f in fields))
    found = conn.execute(query.where(table.c[key].in_(list(wanted))))
    existing = {k: tuple(values) for k, *values in found}
    stale = {k: v for k, v in wanted.items() if existing.get(k) != v}
    if stale:
        stmt = _insert(conn)(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[key], set_={f: stmt.excluded[f] for f in fields}
        )
        conn.execute(stmt, _dicts((key, *fields), ((k, *v) for k, v in stale.items())))
    updated = sum(k in existing for k in stale)
    return len(stale) - updated, updated


def _ids(conn: Connection, numbers: list[str]) -> dict[str, int]:
    table = _TABLES["customers"]
    query = select(table.c.customer_number, table.c.id)
    found = conn.execute(query.where(table.c.customer_number.in_(numbers)))
    return {number: cid for number, cid in found}


def _add_missing(
    conn: Connection, table: Table, fields: tuple[str, ...], wanted: set[tuple[Any, ...]]
) -> int:
    """Insert the rows of ``wanted`` (customer id first) that the customers lack."""
    if not wanted:
        return 0
    query = select(*(table.c[f] for f in fields))
    owners = sorted({values[0] for values in wanted})
    found = conn.execute(query.where(table.c.customer_id.in_(owners)))
    missing = wanted - {tuple(row) for row in found}
    if missing:
        conn.execute(table.insert(), _dicts(fields, sorted(missing)))
    return len(missing)


def _upsert_subscriptions(
    conn: Connection, rows: list[CustomerRow], ids: dict[str, int], changes: Counter[str]
) -> None:
    """Add new subscriptions; bring the end and cancellation of known ones up to date."""
    table = _TABLES["subscriptions"]
    wanted = {  # a later row about the same subscription wins
        (ids[r.customer_number], r.subscription_service, r.subscription_starts_on): (
            r.subscription_ends_on,
            r.subscription_cancelled_at,
        )
        for r in rows
        if r.subscription_service
    }
    if not wanted:
        return
    query = select(table.c.id, *(table.c[f] for f in _SUBSCRIPTION))
    owners = sorted({key[0] for key in wanted})
    found = conn.execute(query.where(table.c.customer_id.in_(owners)))
    existing = {(c, s, d): (sid, (e, x)) for sid, c, s, d, e, x in found}
    new = [(*key, *value) for key, value in wanted.items() if key not in existing]
    changed = [(existing[k][0], *v) for k, v in wanted.items() if existing.get(k, (0, v))[1] != v]
    if new:
        conn.execute(table.insert(), _dicts(_SUBSCRIPTION, new))
    if changed:
        stmt = update(table).where(table.c.id == bindparam("sid"))
        stmt = stmt.values(ends_on=bindparam("ends"), cancelled_at=bindparam("cancelled"))
        conn.execute(stmt, _dicts(("sid", "ends", "cancelled"), changed))
    changes.update(subscriptions_added=len(new), subscriptions_updated=len(changed))


# --- command ---------------------------------------------------------------------------------


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-bad", is_flag=True, help="Загрузить верные строки, даже если есть ошибочные.")
def import_command(file: Path, skip_bad: bool) -> None:
    """Загрузить клиентов из FILE.csv (столбцы: docs/import.md)."""
    engine = open_database(load_settings())
    try:
        result = import_file(
            engine, file, skip_bad=skip_bad, report=lambda err: click.echo(str(err), err=True)
        )
    except ImportFileError as err:
        raise click.ClickException(f"{file}: {err}") from None
    finally:
        engine.dispose()
    if not result.written:
        raise click.ClickException(
            f"плохих строк: {result.bad_rows} из {result.rows}; ничего не записано "
            "(исправьте их или загрузите хорошие строки с --skip-bad)"
        )
    click.echo(summary(result))


def summary(result: ImportResult) -> str:
    """Describe an import's outcome in a few lines."""
    c = result.changes
    return "\n".join(
        [
            f"прочитано строк: {result.rows}, пропущено плохих: {result.bad_rows}",
            f"клиенты: добавлено {c['customers_added']}, изменено {c['customers_updated']}",
            f"номера телефонов: добавлено {c['phones_added']}, "
            f"перенесено от другого клиента {c['phones_moved']}",
            f"лицензии: добавлено {c['licences_added']}, изменено {c['licences_updated']}",
            f"покупки обновлений: добавлено {c['updates_added']}",
            f"подписки: добавлено {c['subscriptions_added']}, "
            f"изменено {c['subscriptions_updated']}",
        ]
    )
