"""CSV import: every row checked first, bad rows reported by line, idempotent upserts."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from onerpa import directory, entitlement
from onerpa.importer import (
    COLUMNS,
    ImportFileError,
    ImportResult,
    RowError,
    import_file,
)
from onerpa.models import Customer, PhoneNumber
from onerpa_support.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "customers.sample.csv"
TABLES = ("customers", "phone_numbers", "licences", "update_purchases", "subscriptions")

Writer = Callable[..., Path]


def line(**values: str) -> list[str]:
    """Return one record in column order; unnamed columns are empty."""
    base = {"customer_number": "200001", "organisation": "ООО «Вектор»"}
    return [{**base, **values}.get(column, "") for column in COLUMNS]


@pytest.fixture
def write_csv(tmp_path: Path) -> Writer:
    """Write records (header first) as a CSV file and return its path."""

    def write(
        *records: list[str],
        delimiter: str = ";",
        encoding: str = "utf-8",
        header: list[str] | None = None,
    ) -> Path:
        buffer = io.StringIO()
        out = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
        out.writerow(list(COLUMNS) if header is None else header)
        out.writerows(records)
        path = tmp_path / "customers.csv"
        path.write_bytes(buffer.getvalue().encode(encoding))
        return path

    return write


def run(engine: Engine, path: Path, **options: object) -> tuple[ImportResult, list[str]]:
    errors: list[RowError] = []
    result = import_file(engine, path, report=errors.append, **options)  # type: ignore[arg-type]
    return result, [str(error) for error in errors]


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {
            table: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
            for table in TABLES
        }


def test_sample_file_imports_every_customer(engine: Engine) -> None:
    result, errors = run(engine, SAMPLE)
    assert errors == []
    assert (result.rows, result.bad_rows, result.written) == (8, 0, True)
    assert result.changes == Counter(
        customers_added=7,
        phones_added=10,
        licences_added=6,
        updates_added=1,
        subscriptions_added=2,
    )


def test_imported_caller_is_found_by_phone_and_entitled(engine: Engine, session: Session) -> None:
    run(engine, SAMPLE)
    card = directory.find_by_phone(session, "+74951234567")
    assert card is not None
    assert (card.customer_number, card.organisation) == ("100101", "ООО «Альфа-Логистик»")
    assert card.records.licences == (entitlement.Licence("OneRPA Studio", date(2025, 12, 31)),)
    decision = entitlement.decide(card.records, datetime(2026, 11, 26, 10, tzinfo=UTC))
    assert decision.reason is entitlement.Reason.FREE_FIRST_YEAR


def test_customer_on_several_rows_gets_all_numbers_and_licences(
    engine: Engine, session: Session
) -> None:
    run(engine, SAMPLE)
    card = directory.find_by_phone(session, "+79265553108")
    assert card is not None and card.customer_number == "100106"
    assert sorted(lic.purchased_on for lic in card.records.licences) == [
        date(2019, 11, 20),
        date(2026, 3, 2),
    ]
    phones = session.scalars(
        select(PhoneNumber.e164).where(PhoneNumber.customer_id == card.customer_id)
    )
    assert sorted(phones) == ["+74955559000", "+74955559001", "+79265553108"]


def test_cancellation_moment_and_russian_dates_are_read(engine: Engine, session: Session) -> None:
    run(engine, SAMPLE)
    romashka = directory.find_by_number(session, "100105")
    belarus = directory.find_by_number(session, "100107")
    assert romashka is not None and belarus is not None
    assert romashka.records.subscriptions == (
        entitlement.Subscription(
            "OneRPA Cloud",
            date(2024, 2, 1),
            date(2026, 1, 31),
            datetime(2025, 10, 15, 11, 30, tzinfo=UTC),
        ),
    )
    assert belarus.records.licences == (entitlement.Licence("OneRPA Studio", date(2025, 5, 15)),)


def test_reimporting_the_same_file_changes_nothing(engine: Engine) -> None:
    run(engine, SAMPLE)
    before = snapshot(engine)
    result, errors = run(engine, SAMPLE)
    assert (errors, result.written, result.changes) == ([], True, Counter())
    assert snapshot(engine) == before


def test_bom_and_comma_delimiter_import_the_same(engine: Engine, write_csv: Writer) -> None:
    path = write_csv(
        line(
            phones="+7 495 123-45-67, 8 916 555-12-34", product="OneRPA", purchased_on="2025-01-01"
        ),
        delimiter=",",
        encoding="utf-8-sig",
    )
    result, errors = run(engine, path)
    assert errors == []
    assert result.changes == Counter(customers_added=1, phones_added=2, licences_added=1)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (line(customer_number=""), "customer_number: не заполнено"),
        (line(customer_number="12A"), "customer_number: '12A' — не от 1 до 32 цифр"),
        (line(organisation="  "), "organisation: не заполнено"),
        (line(organisation="ООО\x07Вектор"), "organisation: содержит управляющие символы"),
        (line(organisation="О" * 301), "organisation: длиннее 300 символов"),
        (line(email="sokolova"), "email: 'sokolova' — не адрес электронной почты"),
        (line(phones="Anonymous"), "phones: 'Anonymous' — не номер телефона"),
        (line(phones="+7 495 123-45-67; 123"), "phones: '123' — не номер телефона"),
        (line(phones=",".join(["+7 495 123-45-67"] * 21)), "phones: больше 20 номеров"),
        (
            line(product="OneRPA", purchased_on="2023-02-29"),
            "purchased_on: '2023-02-29' — не дата вида 2024-03-15 или 15.03.2024",
        ),
        (
            line(product="OneRPA", purchased_on="31/12/2025"),
            "purchased_on: '31/12/2025' — не дата вида 2024-03-15 или 15.03.2024",
        ),
        (
            line(product="OneRPA", purchased_on="2204-01-01"),
            "purchased_on: '2204-01-01' — неправдоподобный год",
        ),
        (
            line(product="OneRPA"),
            "purchased_on: не заполнено (у лицензии должна быть дата покупки)",
        ),
        (
            line(licence_number="77 01", product="OneRPA", purchased_on="2025-01-01"),
            "licence_number: '77 01' — не номер лицензии",
        ),
        (
            line(purchased_on="2025-01-01"),
            "product: не заполнено (у лицензии должен быть продукт)",
        ),
        (
            line(updates_purchased_on="2025-01-01", updates_months="0"),
            "updates_months: '0' — не число месяцев от 1 до 120",
        ),
        (
            line(updates_months="12"),
            "updates_purchased_on: не заполнено (его требует updates_months)",
        ),
        (
            line(subscription_service="OneRPA Cloud"),
            "subscription_starts_on: не заполнено (у подписки должна быть дата начала)",
        ),
        (
            line(subscription_starts_on="2025-01-01"),
            "subscription_service: не заполнено (у подписки должен быть сервис)",
        ),
        (
            line(
                subscription_service="OneRPA Cloud",
                subscription_starts_on="2025-02-01",
                subscription_ends_on="2025-01-31",
            ),
            "subscription_ends_on: раньше subscription_starts_on",
        ),
        (
            line(
                subscription_service="OneRPA Cloud",
                subscription_starts_on="2025-02-01",
                subscription_cancelled_at="yesterday",
            ),
            "subscription_cancelled_at: 'yesterday' — не дата вида 2024-03-15 или 15.03.2024",
        ),
        (
            line(
                subscription_service="OneRPA Cloud",
                subscription_starts_on="2025-02-01",
                subscription_cancelled_at="2025-02-30T10:00",
            ),
            "subscription_cancelled_at: '2025-02-30T10:00' — не дата и время "
            "вида 2025-03-01T12:00+03:00",
        ),
        (line()[:-1], "ожидалось полей: 14, найдено: 13"),
    ],
)
def test_bad_value_is_reported_with_its_line_and_nothing_is_written(
    engine: Engine, write_csv: Writer, record: list[str], message: str
) -> None:
    good = line(customer_number="200002", phones="+7 495 123-45-67")
    result, errors = run(engine, write_csv(good, record))
    assert errors == [f"строка 3: {message}"]
    assert (result.rows, result.bad_rows, result.written) == (2, 1, False)
    assert count(engine, "customers") == 0


def test_every_problem_of_a_row_is_named(engine: Engine, write_csv: Writer) -> None:
    result, errors = run(engine, write_csv(line(customer_number="x", phones="abc")))
    assert errors == [
        "строка 2: customer_number: 'x' — не от 1 до 32 цифр; phones: 'abc' — не номер телефона"
    ]


def test_every_bad_row_is_reported_in_line_order(engine: Engine, write_csv: Writer) -> None:
    path = write_csv(
        line(customer_number="1"),
        line(customer_number="2", phones="nope"),
        line(customer_number="3"),
        line(customer_number="4", email="@"),
    )
    result, errors = run(engine, path)
    assert errors == [
        "строка 3: phones: 'nope' — не номер телефона",
        "строка 5: email: '@' — не адрес электронной почты",
    ]
    assert result.bad_rows == 2
    assert count(engine, "customers") == 0


def test_skip_bad_writes_the_good_rows_only(engine: Engine, write_csv: Writer) -> None:
    path = write_csv(
        line(customer_number="1"),
        line(customer_number="2", phones="nope"),
        line(customer_number="3"),
    )
    result, errors = run(engine, path, skip_bad=True)
    assert errors == ["строка 3: phones: 'nope' — не номер телефона"]
    assert (result.bad_rows, result.written) == (1, True)
    with engine.connect() as conn:
        numbers = conn.execute(select(Customer.customer_number).order_by("customer_number"))
        assert numbers.scalars().all() == ["1", "3"]


def test_number_claimed_by_two_customers_is_reported_on_both_lines(
    engine: Engine, write_csv: Writer
) -> None:
    path = write_csv(
        line(customer_number="1", phones="+7 495 123-45-67"),
        line(customer_number="2", phones="8 (495) 123-45-67"),
        line(customer_number="1", phones="84951234567"),
    )
    result, errors = run(engine, path)
    assert errors == [
        "строка 2: phones: +74951234567 указан также у клиента 2 в строке 3",
        "строка 3: phones: +74951234567 указан также у клиента 1 в строке 2, "
        "у клиента 1 в строке 4",
        "строка 4: phones: +74951234567 указан также у клиента 2 в строке 3",
    ]
    assert result.bad_rows == 3


def test_same_number_twice_for_one_customer_is_fine(engine: Engine, write_csv: Writer) -> None:
    path = write_csv(line(phones="+7 495 123-45-67, 84951234567"), line(phones="74951234567"))
    result, errors = run(engine, path)
    assert errors == []
    assert result.changes == Counter(customers_added=1, phones_added=1)


def test_rows_of_one_customer_that_disagree_are_reported(engine: Engine, write_csv: Writer) -> None:
    path = write_csv(
        line(organisation="ООО «Вектор»", email="a@vector.example"),
        line(organisation="ООО «Вектор-М»", email="b@vector.example"),
    )
    _, errors = run(engine, path)
    assert errors == ["строка 3: organisation, email: не как в строке 2 того же клиента"]


def test_licence_number_given_to_two_customers_is_reported(
    engine: Engine, write_csv: Writer
) -> None:
    licence = {"licence_number": "7701", "product": "OneRPA", "purchased_on": "2025-01-01"}
    path = write_csv(line(customer_number="1", **licence), line(customer_number="2", **licence))
    _, errors = run(engine, path)
    assert errors == ["строка 3: licence_number: 7701 в строке 2 указан иначе"]


def test_line_numbers_count_lines_inside_quoted_fields(engine: Engine, write_csv: Writer) -> None:
    path = write_csv(line(organisation="ООО «Вектор»\nфилиал"), line(phones="nope"))
    _, errors = run(engine, path)
    assert errors == [
        "строка 2: organisation: содержит управляющие символы",
        "строка 4: phones: 'nope' — не номер телефона",
    ]


def test_blank_lines_are_not_rows(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text(";".join(COLUMNS) + "\n\n" + ";".join(line()) + "\n\n", encoding="utf-8")
    result, errors = run(engine, path)
    assert (result.rows, errors) == (1, [])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "файл пуст (первая строка — заголовок с именами столбцов)"),
        (b"\xef\xbb\xbf\r\n", "файл пуст (первая строка — заголовок с именами столбцов)"),
        (";".join(COLUMNS).encode() + b"\r\n", "в файле есть заголовок, но нет строк"),
        (
            b"customer_number;organisation;phone\r\n1;A;+74951234567\r\n",
            "строка 1: неизвестные столбцы 'phone'; столбцы: " + ", ".join(COLUMNS),
        ),
        (
            b"customer_number;phones\r\n1;+74951234567\r\n",
            "строка 1: нет обязательных столбцов: organisation",
        ),
        (
            b"customer_number;organisation;organisation\r\n1;A;B\r\n",
            "строка 1: столбцы указаны дважды: organisation",
        ),
        (
            "customer_number;organisation\r\n1;Альфа\r\n2;Вектор\r\n".encode("cp1251"),
            "строка 2: не UTF-8 (байт 0xc0); сохраните файл в UTF-8",
        ),
    ],
)
def test_file_that_cannot_be_imported_says_why(
    engine: Engine, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError) as caught:
        import_file(engine, path)
    assert str(caught.value) == message
    assert count(engine, "customers") == 0


def test_optional_columns_may_be_left_out(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("Organisation,Customer_Number\nООО «Вектор»,77\n", encoding="utf-8")
    result, errors = run(engine, path)
    assert (errors, result.changes) == ([], Counter(customers_added=1))


def test_changed_details_are_updated_on_reimport(engine: Engine, write_csv: Writer) -> None:
    run(engine, write_csv(line(contact_name="Соколова И.П.")))
    result, _ = run(engine, write_csv(line(contact_name="Соколова Ирина Петровна")))
    assert result.changes == Counter(customers_updated=1)
    with engine.connect() as conn:
        assert conn.execute(select(Customer.contact_name)).scalar_one() == "Соколова Ирина Петровна"


def test_number_moves_to_the_customer_the_file_names(
    engine: Engine, write_csv: Writer, session: Session
) -> None:
    run(engine, write_csv(line(customer_number="1", phones="+7 495 123-45-67")))
    result, _ = run(engine, write_csv(line(customer_number="2", phones="+7 495 123-45-67")))
    assert result.changes == Counter(customers_added=1, phones_moved=1)
    card = directory.find_by_phone(session, "+74951234567")
    assert card is not None and card.customer_number == "2"


def test_licence_number_moves_and_updates(engine: Engine, write_csv: Writer) -> None:
    licence = {"licence_number": "7701", "product": "OneRPA"}
    run(engine, write_csv(line(customer_number="1", purchased_on="2025-01-01", **licence)))
    result, _ = run(
        engine, write_csv(line(customer_number="2", purchased_on="2025-01-02", **licence))
    )
    assert result.changes == Counter(customers_added=1, licences_updated=1)
    assert count(engine, "licences") == 1


def test_subscription_end_and_cancellation_are_brought_up_to_date(
    engine: Engine, write_csv: Writer, session: Session
) -> None:
    sub = {"subscription_service": "OneRPA Cloud", "subscription_starts_on": "2024-01-01"}
    run(engine, write_csv(line(**sub)))
    cancelled = line(
        subscription_ends_on="31.12.2025", subscription_cancelled_at="2025-06-01", **sub
    )
    result, _ = run(engine, write_csv(cancelled))
    assert result.changes == Counter(subscriptions_updated=1)
    card = directory.find_by_number(session, "200001")
    assert card is not None
    assert card.records.subscriptions == (
        entitlement.Subscription(
            "OneRPA Cloud",
            date(2024, 1, 1),
            date(2025, 12, 31),
            datetime(2025, 5, 31, 21, 0, tzinfo=UTC),  # 00:00 Moscow time that day
        ),
    )


def test_updates_default_to_twelve_months(engine: Engine, write_csv: Writer) -> None:
    run(engine, write_csv(line(updates_purchased_on="2025-09-01")))
    with engine.connect() as conn:
        months = conn.execute(text("SELECT months FROM update_purchases")).scalar_one()
    assert months == 12


def test_import_does_not_delete_what_the_file_leaves_out(engine: Engine, write_csv: Writer) -> None:
    run(engine, write_csv(line(customer_number="1"), line(customer_number="2")))
    run(engine, write_csv(line(customer_number="1")))
    assert count(engine, "customers") == 2


def test_batches_are_written_across_many_customers(
    engine: Engine, write_csv: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("onerpa.importer.BATCH_CUSTOMERS", 3)
    records = [line(customer_number=str(n), phones=f"+7 495 555-10-{n:02d}") for n in range(10)]
    result, _ = run(engine, write_csv(*records))
    assert result.changes == Counter(customers_added=10, phones_added=10)
    with engine.connect() as conn:
        owners = conn.execute(
            select(func.count(func.distinct(PhoneNumber.customer_id)))
        ).scalar_one()
    assert owners == 10


def test_no_progress_bar_for_a_small_file_off_a_terminal(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    import_file(engine, SAMPLE)
    assert capsys.readouterr().err == ""


def test_progress_bar_goes_to_stderr_when_asked(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    import_file(engine, SAMPLE, progress=True)
    captured = capsys.readouterr()
    assert "checking" in captured.err and "writing" in captured.err
    assert captured.out == ""


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    database = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("ONERPA_DATABASE_URL", f"sqlite:///{database}")
    return database


def test_import_command_prints_what_changed(cli_env: Path) -> None:
    result = CliRunner().invoke(main, ["import", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "прочитано строк: 8, пропущено плохих: 0",
        "клиенты: добавлено 7, изменено 0",
        "номера телефонов: добавлено 10, перенесено от другого клиента 0",
        "лицензии: добавлено 6, изменено 0",
        "покупки обновлений: добавлено 1",
        "подписки: добавлено 2, изменено 0",
    ]


def test_import_command_lists_bad_rows_and_fails(cli_env: Path, write_csv: Writer) -> None:
    path = write_csv(line(customer_number="1"), line(customer_number="2", phones="nope"))
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code == 1
    assert "строка 3: phones: 'nope' — не номер телефона" in result.stderr
    assert "плохих строк: 1 из 2; ничего не записано" in result.stderr


def test_import_command_skip_bad_imports_the_rest(cli_env: Path, write_csv: Writer) -> None:
    path = write_csv(line(customer_number="1"), line(customer_number="2", phones="nope"))
    result = CliRunner().invoke(main, ["import", "--skip-bad", str(path)])
    assert result.exit_code == 0
    assert "строка 3: phones: 'nope' — не номер телефона" in result.stderr
    assert "клиенты: добавлено 1, изменено 0" in result.stdout


def test_import_command_reports_a_file_error(cli_env: Path, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code == 1
    assert "файл пуст" in result.stderr
