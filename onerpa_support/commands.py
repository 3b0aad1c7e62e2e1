"""The subcommands of ``onerpa-support`` other than the basics in ``cli``.

Each feature module exposes a click command; this list is the one place they are joined.
"""

from __future__ import annotations

import click

from dashboard.api_cli import api_token_group
from dashboard.cli import COMMANDS as dashboard_commands
from ivr.cli import fastagi_command, fastagi_health_command
from ivr.prompts import prompts_command
from ivr.simulate import simulate_command
from onerpa.demo import demo_data_command
from onerpa.importer import import_command
from onerpa.requests_commands import COMMANDS as requests_commands
from onerpa.timing_commands import COMMANDS as timing_commands
from onerpa.whatif_command import what_if_command
from onerpa_support.allinone import run_command

ALL: list[click.Command] = []
ALL.append(run_command)
ALL.append(fastagi_command)
ALL.append(fastagi_health_command)
ALL.append(simulate_command)
ALL.append(prompts_command)
ALL.append(import_command)
ALL.append(demo_data_command)
ALL.extend(dashboard_commands)
ALL.append(api_token_group)
ALL.extend(timing_commands)
ALL.append(what_if_command)
ALL.extend(requests_commands)
