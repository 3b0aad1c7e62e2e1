"""What a route needs from the outside world, passed in rather than read from globals."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ivr.lookup import Directory
from onerpa.metrics import ProcessMetrics
from onerpa.recorder import CallRecorder
from onerpa.requests import RequestWriter
from onerpa.settings import Settings


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """The settings, directory, call recorder, clock and metrics a route runs with."""

    settings: Settings
    directory: Directory
    recorder: CallRecorder
    clock: Callable[[], datetime] = system_clock
    server: str = field(default_factory=socket.gethostname)
    metrics: ProcessMetrics = field(default_factory=ProcessMetrics)  # unexported by default
    requests: RequestWriter | None = None  # voice messages; None: none are taken
