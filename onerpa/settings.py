"""One settings object, built from the environment and validated at start-up.

Every setting is an ``ONERPA_*`` environment variable (``DATABASE_URL`` is also read, as
container platforms set it). ``ONERPA_CONFIG_FILE`` may name a file of ``NAME=value`` lines
that fills in what the environment leaves unset. A wrong value stops start-up with a message
naming the setting; nothing deep in the code reads the environment itself.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

from onerpa.hours import SupportCalendar

DEFAULT_DATABASE_URL = "sqlite:///var/onerpa-support.sqlite3"
# When a call-back asked for after hours falls due (onerpa.requests.callback_due).
CALLBACK_NEXT_DAY_END = "next_day_end"
CALLBACK_NEXT_OPENING = "next_opening"
CALLBACK_RULES = (CALLBACK_NEXT_DAY_END, CALLBACK_NEXT_OPENING)
CONFIG_FILE = "ONERPA_CONFIG_FILE"
_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_DAY_KEYS = tuple(_DAYS)
_DAY_NAMES = ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье")
_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_HOURS_ITEM = re.compile(
    r"^(?P<first>[a-z]{3})(?:-(?P<last>[a-z]{3}))?\s+"
    r"(?:(?P<closed>closed)|(?P<opens>\d{1,2}:\d{2})-(?P<closes>\d{1,2}:\d{2}))$"
)


log = logging.getLogger(__name__)


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with."""

    database_url: str = DEFAULT_DATABASE_URL
    fastagi_host: str = "127.0.0.1"
    fastagi_port: int = 4573
    allowed_peers: tuple[str, ...] = ("127.0.0.1", "::1")
    calendar: SupportCalendar = field(default_factory=SupportCalendar)
    queue: str = "onerpa-support"
    sales_extension: str = ""
    support_email: str = "info@onerpa.ru"
    prompts_dir: str = ""  # the folder of prompts.ru.tsv and ru/; empty: the checkout's
    decision_budget: timedelta = timedelta(seconds=1)
    lookup_workers: int = 0  # 0: as many as suit the database (db.concurrent_reads)
    consultation_target: timedelta = timedelta(minutes=3)
    consultation_limit: timedelta = timedelta(minutes=5)
    wait_target: timedelta = timedelta(seconds=60)
    digits_tries: int = 2
    digits_timeout: timedelta = timedelta(seconds=7)
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8080
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # the `metrics` process (database collector)
    fastagi_metrics_port: int = 9465  # the FastAGI server's own exporter; 0 = none
    queue_log: str = "/var/log/asterisk/queue_log"
    sweep_interval: timedelta = timedelta(seconds=60)
    sweep_in_ivr: timedelta = timedelta(minutes=15)
    sweep_queued: timedelta = timedelta(hours=2)
    sweep_talking: timedelta = timedelta(hours=4)
    # Voice messages and requests (docs/requests.md); their folder is recordings_dir below.
    message_max: timedelta = timedelta(seconds=120)
    recording_retention_days: int = 90
    callback_after_hours: str = CALLBACK_NEXT_DAY_END
    # Mail to the support mailbox; no host: no mail (requests are still kept and shown).
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = ""  # empty: support_email

    @property
    def recordings_path(self) -> Path:
        """Return the recordings folder as an absolute path (Asterisk needs one)."""
        return Path(self.recordings_dir).expanduser().resolve()

    @property
    def mail_sender(self) -> str:
        """Return the From address of the mail to the support mailbox."""
        return self.smtp_from or self.support_email

    # Requests (voice messages and call-backs) on the dashboard, and placing call-backs.
    recordings_dir: str = "/var/lib/onerpa/recordings"
    outgoing_spool: str = "/var/spool/asterisk/outgoing"
    outgoing_done: str = "/var/spool/asterisk/outgoing_done"
    outgoing_tmp: str = "/var/spool/asterisk/onerpa-tmp"
    callback_max_attempts: int = 3
    callback_due: timedelta = timedelta(hours=2)
    callback_ring: timedelta = timedelta(seconds=30)
    # Asterisk's manager interface (AMI): agents on the line and the live queue. Optional:
    # without a secret the dashboard says AMI is not configured. Never a default secret.
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = "onerpa"
    ami_secret: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (the process environment by default)."""
        env = with_config_file(os.environ if env is None else env)
        get = _Reader(env)
        limit = get.seconds("ONERPA_CONSULTATION_LIMIT_SECONDS", 300)
        target = get.seconds("ONERPA_CONSULTATION_TARGET_SECONDS", 180)
        if target >= limit:
            raise SettingsError(
                "ONERPA_CONSULTATION_TARGET_SECONDS",
                "должно быть меньше ONERPA_CONSULTATION_LIMIT_SECONDS",
            )
        return cls(
            database_url=get.database_url(),
            fastagi_host=get.text("ONERPA_FASTAGI_HOST", "127.0.0.1"),
            fastagi_port=get.port("ONERPA_FASTAGI_PORT", 4573),
            allowed_peers=get.addresses("ONERPA_FASTAGI_ALLOWED", ("127.0.0.1", "::1")),
            calendar=get.calendar(),
            queue=get.text("ONERPA_QUEUE", "onerpa-support"),
            sales_extension=get.extension("ONERPA_SALES_EXTENSION"),
            support_email=get.text("ONERPA_SUPPORT_EMAIL", "info@onerpa.ru"),
            prompts_dir=get.folder("ONERPA_PROMPTS_DIR"),
            decision_budget=get.seconds("ONERPA_DECISION_BUDGET_SECONDS", 1.0),
            lookup_workers=get.integer("ONERPA_LOOKUP_WORKERS", 0, low=0, high=256),
            consultation_target=target,
            consultation_limit=limit,
            wait_target=get.seconds("ONERPA_WAIT_TARGET_SECONDS", 60),
            digits_tries=get.integer("ONERPA_DIGITS_TRIES", 2, low=1, high=5),
            digits_timeout=get.seconds("ONERPA_DIGITS_TIMEOUT_SECONDS", 7),
            dashboard_host=get.text("ONERPA_DASHBOARD_HOST", "127.0.0.1"),
            dashboard_port=get.port("ONERPA_DASHBOARD_PORT", 8080),
            metrics_host=get.text("ONERPA_METRICS_HOST", "127.0.0.1"),
            metrics_port=get.port("ONERPA_METRICS_PORT", 9464),
            fastagi_metrics_port=get.integer(
                "ONERPA_FASTAGI_METRICS_PORT", 9465, low=0, high=65535
            ),
            queue_log=get.text("ONERPA_QUEUE_LOG", "/var/log/asterisk/queue_log"),
            sweep_interval=get.seconds("ONERPA_SWEEP_INTERVAL_SECONDS", 60),
            sweep_in_ivr=get.seconds("ONERPA_SWEEP_IN_IVR_SECONDS", 15 * 60),
            sweep_queued=get.seconds("ONERPA_SWEEP_QUEUED_SECONDS", 2 * 3600),
            sweep_talking=get.seconds("ONERPA_SWEEP_TALKING_SECONDS", 4 * 3600),
            recordings_dir=get.text("ONERPA_RECORDINGS_DIR", "/var/lib/onerpa/recordings"),
            outgoing_spool=get.text("ONERPA_OUTGOING_SPOOL", "/var/spool/asterisk/outgoing"),
            outgoing_done=get.text("ONERPA_OUTGOING_DONE", "/var/spool/asterisk/outgoing_done"),
            outgoing_tmp=get.text("ONERPA_OUTGOING_TMP", "/var/spool/asterisk/onerpa-tmp"),
            callback_max_attempts=get.integer("ONERPA_CALLBACK_MAX_ATTEMPTS", 3, low=1, high=10),
            callback_due=get.seconds("ONERPA_CALLBACK_DUE_SECONDS", 2 * 3600),
            callback_ring=get.seconds("ONERPA_CALLBACK_RING_SECONDS", 30),
            ami_host=get.text("ONERPA_AMI_HOST", "127.0.0.1"),
            ami_port=get.port("ONERPA_AMI_PORT", 5038),
            ami_username=get.text("ONERPA_AMI_USERNAME", "onerpa"),
            ami_secret=get.raw("ONERPA_AMI_SECRET") or "",
            message_max=timedelta(
                seconds=get.integer("ONERPA_MESSAGE_MAX_SECONDS", 120, low=10, high=600)
            ),
            recording_retention_days=get.integer(
                "ONERPA_RECORDING_RETENTION_DAYS", 90, low=1, high=3650
            ),
            callback_after_hours=get.choice(
                "ONERPA_CALLBACK_AFTER_HOURS", CALLBACK_NEXT_DAY_END, CALLBACK_RULES
            ),
            **get.smtp(),
        )


class _Reader:
    """Read and validate one kind of value each; errors name the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def folder(self, name: str) -> str:
        value = self.raw(name)
        if value is not None and not Path(value).is_dir():
            raise SettingsError(name, f"папки {value} нет")
        return value or ""

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name) or default
        if value not in choices:
            raise SettingsError(name, f"{value!r} — не одно из: {', '.join(choices)}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in ("yes", "true", "on", "1"):
            return True
        if value.lower() in ("no", "false", "off", "0"):
            return False
        raise SettingsError(name, f"{value!r} — нужно yes или no")

    def smtp(self) -> dict[str, Any]:
        """The mail server. There is no default password: without one, no sign-in."""
        username = self.text("ONERPA_SMTP_USERNAME", "")
        password = self.env.get("ONERPA_SMTP_PASSWORD") or ""
        sender = self.text("ONERPA_SMTP_FROM", "")
        if sender and "@" not in sender:
            raise SettingsError("ONERPA_SMTP_FROM", f"{sender!r} — не адрес электронной почты")
        return {
            "smtp_host": self.text("ONERPA_SMTP_HOST", ""),
            "smtp_port": self.port("ONERPA_SMTP_PORT", 587),
            "smtp_starttls": self.flag("ONERPA_SMTP_STARTTLS", True),
            "smtp_username": username,
            "smtp_password": password,
            "smtp_from": sender,
        }

    def database_url(self) -> str:
        # Name the variable the value came from: an operator who set only DATABASE_URL
        # should not be told to fix ONERPA_DATABASE_URL.
        name = "ONERPA_DATABASE_URL" if self.raw("ONERPA_DATABASE_URL") else "DATABASE_URL"
        url = self.raw(name)
        if url is None:
            return DEFAULT_DATABASE_URL
        if url.startswith("postgres://"):  # the form Heroku-style platforms hand out
            url = "postgresql://" + url.removeprefix("postgres://")
        if not url.startswith(("sqlite://", "postgresql")):
            raise SettingsError(name, "нужен URL вида sqlite:// или postgresql://")
        path = sqlite_path(url)
        # Only the default's var/ is made on the way (db.make_engine): a missing folder in a
        # given URL is more likely a typo than a wish for a new directory tree.
        if url != DEFAULT_DATABASE_URL and path is not None and not path.parent.is_dir():
            raise SettingsError(
                name, f"папки {path.parent} нет: исправьте путь к файлу базы данных или создайте её"
            )
        return url

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(name, f"{value!r} — не целое число") from None
        if not low <= number <= high:
            raise SettingsError(name, f"должно быть от {low} до {high}")
        return number

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, low=1, high=65535)

    def seconds(self, name: str, default: float) -> timedelta:
        value = self.raw(name)
        if value is None:
            return timedelta(seconds=default)
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(name, f"{value!r} — не число секунд") from None
        if not 0 < number < 86400:
            raise SettingsError(name, "нужно число секунд больше 0 и меньше суток")
        return timedelta(seconds=number)

    def addresses(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingsError(name, f"{item!r} — не IP-адрес и не сеть") from None
        return items

    def extension(self, name: str) -> str:
        value = self.raw(name) or ""
        if value and not re.fullmatch(r"[0-9A-Za-z_*#+-]{1,40}", value):
            raise SettingsError(name, f"{value!r} — не добавочный номер диалплана")
        return value

    def dates(self, name: str) -> frozenset[date]:
        value = self.raw(name)
        if value is None:
            return frozenset()
        days = set()
        for item in value.split(","):
            try:
                days.add(date.fromisoformat(item.strip()))
            except ValueError:
                raise SettingsError(name, f"{item.strip()!r} — не дата вида ГГГГ-ММ-ДД") from None
        return frozenset(days)

    def calendar(self) -> SupportCalendar:
        shortening = self.integer("ONERPA_PRE_HOLIDAY_SHORTENING_MINUTES", 60, low=0, high=24 * 60)
        base = SupportCalendar()
        return SupportCalendar(
            timezone=self.timezone(),
            weekly=self.weekly(base.weekly),
            pre_holiday_shortening=timedelta(minutes=shortening),
            extra_closed=self.dates("ONERPA_CLOSED_DATES"),
            extra_working=self.dates("ONERPA_WORKING_DATES"),
            extra_short=self.dates("ONERPA_SHORT_DATES"),
        )

    def timezone(self) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        name = self.text("ONERPA_TIMEZONE", "Europe/Moscow")
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError("ONERPA_TIMEZONE", f"{name!r} — неизвестный часовой пояс") from None
        return name

    def weekly(self, default: Mapping[int, tuple[time, time] | None]) -> dict:
        """Parse ``mon-fri 09:00-17:00; sat 10:00-14:00; sun closed``, each day named once."""
        value = self.raw("ONERPA_HOURS")
        weekly = dict(default)
        if value is None:
            return weekly
        named: dict[int, str] = {}  # day -> the item that set it
        for item in (part.strip() for part in value.lower().split(";")):
            days, hours = parse_hours_item(item)
            for day in days:
                if day in named:
                    raise SettingsError(
                        "ONERPA_HOURS",
                        f"день «{_DAY_NAMES[day]}» ({_DAY_KEYS[day]}) указан дважды: "
                        f"в {named[day]!r} и в {item!r}",
                    )
                named[day] = item
                weekly[day] = hours
        return weekly


def parse_hours_item(item: str) -> tuple[range, tuple[time, time] | None]:
    """Return the weekdays of one ``mon-fri 09:00-17:00`` item and their hours (None: closed)."""
    match = _HOURS_ITEM.match(item)
    name = "ONERPA_HOURS"
    if not match or match["first"] not in _DAYS or (match["last"] or "mon") not in _DAYS:
        raise SettingsError(name, f"{item!r} не похоже на 'mon-fri 09:00-17:00' или 'sun closed'")
    first = _DAYS[match["first"]]
    last = _DAYS[match["last"]] if match["last"] else first
    if last < first:
        raise SettingsError(name, f"{item!r}: дни идут в обратном порядке")
    days = range(first, last + 1)
    if match["closed"]:
        return days, None
    try:
        opens, closes = (
            time.fromisoformat(match["opens"].zfill(5)),
            time.fromisoformat(match["closes"].zfill(5)),
        )
    except ValueError:
        raise SettingsError(name, f"{item!r}: не время суток") from None
    if closes <= opens:
        raise SettingsError(name, f"{item!r}: закрывается раньше, чем открывается")
    return days, (opens, closes)


def read_config_file(path: str | Path) -> dict[str, str]:
    """Return the settings in the file at ``path``: ``NAME=value`` lines, ``#`` comments.

    The format is the one systemd's ``EnvironmentFile`` and Compose's ``.env`` read, so one
    file serves all three: a value may be wrapped in matching quotes, which are removed;
    comments stand on lines of their own. Only this service's names are accepted, so a stray
    secret of another program (or a typo in the prefix) is refused rather than ignored.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError(CONFIG_FILE, f"не удаётся прочитать {path}: {err}") from None
    if path.stat().st_mode & 0o004:
        log.warning(
            "файл %s может прочитать любой пользователь, а в нём бывают секреты (chmod 640)", path
        )
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.removeprefix("export ").partition("=")
        name = name.strip()
        where = f"{path}, строка {number}"
        if not equals or not _NAME.match(name):
            raise SettingsError(CONFIG_FILE, f"{where}: строка не вида NAME=value")
        if name == CONFIG_FILE or not (name.startswith("ONERPA_") or name == "DATABASE_URL"):
            raise SettingsError(CONFIG_FILE, f"{where}: {name} — не настройка этой службы")
        values[name] = _unquote(value.strip())
    return values


def apply_config_file(env: MutableMapping[str, str]) -> None:
    """Fill the names ``env`` leaves unset or blank from the file ``ONERPA_CONFIG_FILE`` names."""
    path = (env.get(CONFIG_FILE) or "").strip()
    if not path:
        return
    for name, value in read_config_file(path).items():
        if not (env.get(name) or "").strip():
            env[name] = value


def with_config_file(env: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``env`` completed from its ``ONERPA_CONFIG_FILE`` (the environment wins)."""
    merged = dict(env)
    apply_config_file(merged)
    return merged


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def sqlite_path(url: str) -> Path | None:
    """Return the file behind a sqlite URL (None for in-memory or other databases)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url in (prefix, "sqlite:///:memory:"):
        return None
    return Path(url.removeprefix(prefix))
