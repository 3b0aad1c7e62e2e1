"""The Asterisk configuration in ``asterisk/``: lint, and the contract with ivr/dialplan.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import wave
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ivr import dialplan, prompts
from ivr.dialplan import Route
from onerpa.settings import Settings

ASTERISK = Path(__file__).resolve().parents[1] / "asterisk"
EXTENSIONS = ASTERISK / "extensions.conf"

# asterisklint message codes to ignore, each with the reason it is a false positive on
# valid Asterisk 22 syntax. Everything else it reports (errors, warnings and hints alike)
# fails the test. Empty: asterisklint 0.4.3 reports nothing on extensions.conf.
LINT_FALSE_POSITIVES: dict[str, str] = {}

# The forms in which providers deliver the support number as the DID.
SUPPORT_DIDS = ("74997195581", "84997195581", "+74997195581", "4997195581")

# Applications a hang-up handler may run: nothing that plays, waits or dials.
HANGUP_HANDLER_APPS = {"Set", "GotoIf", "AGI", "NoOp", "Verbose", "Return"}

_LINT_LINE = re.compile(r"^(?P<where>\S+:\d+) (?P<code>[EWH]_[A-Z0-9_]+): (?P<text>.*)$")
_EXTEN = re.compile(r"^exten\s*=>\s*(?P<exten>[^,]+),(?P<prio>[^,(]+)(?:\([^)]*\))?,(?P<app>.*)$")
_SAME = re.compile(r"^same\s*=>\s*(?P<prio>[^,(]+)(?:\([^)]*\))?,(?P<app>.*)$")
_READ = re.compile(r"\$\{([A-Za-z0-9_]+)")
_MASTER_READ = re.compile(r"MASTER_CHANNEL\(([A-Za-z0-9_]+)\)")
_SCRIPT = re.compile(r"agi://[^/,]+/([^,]+)")


@dataclass(frozen=True)
class Step:
    """One priority of the dialplan: where it is, which application, with what data."""

    context: str
    exten: str
    app: str
    data: str
    line: int


@dataclass
class Dialplan:
    """extensions.conf as the contract checks need it."""

    steps: list[Step] = field(default_factory=list)
    globals: dict[str, str] = field(default_factory=dict)
    contexts: dict[str, set[str]] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    def in_context(self, context: str) -> list[Step]:
        return [s for s in self.steps if s.context == context]

    def apps(self, app: str) -> list[Step]:
        return [s for s in self.steps if s.app == app]


def strip_comment(line: str) -> tuple[str, str]:
    """Split a config line at its first unescaped semicolon."""
    match = re.search(r"(?<!\\);", line)
    if match is None:
        return line.strip(), ""
    return line[: match.start()].strip(), line[match.end() :].strip()


def split_app(text: str) -> tuple[str, str]:
    name, _, rest = text.partition("(")
    return name.strip(), rest[: rest.rfind(")")] if ")" in rest else rest


def parse_dialplan(text: str) -> Dialplan:
    """Parse contexts, extensions, applications and globals of an extensions.conf."""
    plan = Dialplan()
    context, exten = "", ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line, comment = strip_comment(raw)
        if comment:
            plan.comments.append(comment)
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            context = line[1:-1]
            plan.contexts.setdefault(context, set())
            continue
        match = _EXTEN.match(line) or _SAME.match(line)
        if match is None:
            if context == "globals":
                name, _, value = line.partition("=")
                plan.globals[name.strip()] = value.strip()
            continue
        exten = match.groupdict().get("exten") or exten
        plan.contexts[context].add(exten.strip())
        app, data = split_app(match["app"])
        plan.steps.append(Step(context, exten.strip(), app, data, number))
    return plan


def parse_conf(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Parse an Asterisk .conf into (section, [(key, value)]), keeping repeated names.

    A section ``[name](template)`` starts with the template's items; templates ``(!)`` are
    not returned themselves.
    """
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    templates: dict[str, list[tuple[str, str]]] = {}
    items: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line, _ = strip_comment(raw)
        if not line:
            continue
        header = re.fullmatch(r"\[([^]]+)\](?:\(([^)]*)\))?", line)
        if header is None:
            key, _, value = line.partition("=")
            items.append((key.strip(), value.lstrip(">").strip()))
            continue
        name, options = header[1], (header[2] or "").split(",")
        items = [item for option in options for item in templates.get(option.strip(), [])]
        if "!" in options:
            templates[name] = items
        else:
            sections.append((name, items))
    return sections


def section(sections: list, name: str, kind: str | None = None) -> dict[str, list[str]]:
    """Merge the sections called ``name`` (of ``type = kind`` if given) into key -> values."""
    merged: dict[str, list[str]] = {}
    for title, items in sections:
        values = dict(items)
        if title != name or (kind is not None and values.get("type") != kind):
            continue
        for key, value in items:
            merged.setdefault(key, []).append(value)
    return merged


def reads(plan: Dialplan) -> set[str]:
    """Every variable whose value the dialplan reads."""
    found: set[str] = set()
    for step in plan.steps:
        found |= set(_READ.findall(step.data)) | set(_MASTER_READ.findall(step.data))
    return found


def writes(plan: Dialplan) -> set[str]:
    """Every variable the dialplan sets with Set()."""
    found = set()
    for step in plan.apps("Set"):
        target = step.data.partition("=")[0]
        found.add(re.sub(r"^LOCAL\((.*)\)$", r"\1", target))
    return found


def script_name(step: Step) -> str:
    """Return the FastAGI script name of an AGI() step."""
    match = _SCRIPT.search(step.data)
    assert match is not None, f"line {step.line}: not a FastAGI URL: {step.data}"
    return match[1]


def played(plan: Dialplan) -> list[str]:
    """Every sound file Playback() and Background() play."""
    files = []
    for step in plan.apps("Playback") + plan.apps("Background"):
        files += step.data.split(",")[0].split("&")
    return files


@pytest.fixture(scope="module")
def plan() -> Dialplan:
    return parse_dialplan(EXTENSIONS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def queues() -> list:
    return parse_conf((ASTERISK / "queues.conf").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pjsip() -> list:
    return parse_conf((ASTERISK / "pjsip.conf").read_text(encoding="utf-8"))


def run_asterisklint(path: Path) -> list[tuple[str, str, str]]:
    """Run ``asterisklint dialplan-check`` and return (where, code, text) for each message."""
    env = {**os.environ, "ALINT_IGNORE": ",".join(LINT_FALSE_POSITIVES)}
    # The console script lives beside the interpreter; calling main() through the
    # interpreter works the same from any virtualenv layout.
    code = (
        "import os, sys; from asterisklint.main import main; "
        "sys.exit(main(sys.argv[1:], os.environ))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "dialplan-check", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    output = (result.stdout + result.stderr).splitlines()
    messages = [(m["where"], m["code"], m["text"]) for m in map(_LINT_LINE.match, output) if m]
    assert messages or result.returncode == 0, "\n".join(output)
    return messages


# --- lint -----------------------------------------------------------------------------------


def test_asterisklint_reports_nothing_on_the_dialplan() -> None:
    assert run_asterisklint(EXTENSIONS) == []


def test_asterisklint_catches_a_broken_dialplan(tmp_path: Path) -> None:
    broken = tmp_path / "extensions.conf"
    broken.write_text(
        "[general]\n[globals]\n[ctx]\nexten => s,1,Playbak(x)\n same => n,Goto(nowhere,s,1)\n"
    )
    codes = {code for _, code, _ in run_asterisklint(broken)}
    assert {"E_APP_MISSING", "E_DP_GOTO_NOCONTEXT"} <= codes


# --- variables ------------------------------------------------------------------------------


CONTRACT_VARIABLES = (
    set(dialplan.SET_VARIABLES)
    | set(dialplan.CALL_FILE_VARIABLES)
    | set(dialplan.CALLBACK_VARIABLES)
)


def test_dialplan_reads_exactly_the_contract_variables(plan: Dialplan) -> None:
    onerpa = {name for name in reads(plan) if name.startswith("ONERPA_")}
    assert onerpa - set(plan.globals) == CONTRACT_VARIABLES


def test_globals_do_not_shadow_contract_variables(plan: Dialplan) -> None:
    assert set(plan.globals) & CONTRACT_VARIABLES == set()


def test_dialplan_sets_no_onerpa_variable_outside_the_contract(plan: Dialplan) -> None:
    onerpa = {name for name in writes(plan) if name.startswith("ONERPA_")}
    assert onerpa <= set(dialplan.SET_VARIABLES)
    assert onerpa & set(plan.globals) == set()


def test_every_global_the_dialplan_reads_is_defined(plan: Dialplan) -> None:
    onerpa = {name for name in reads(plan) if name.startswith("ONERPA_")}
    assert {n for n in onerpa if n not in CONTRACT_VARIABLES} <= set(plan.globals)


def test_contract_table_documents_every_variable(plan: Dialplan) -> None:
    rows = {c.split("|")[1].strip() for c in plan.comments if c.startswith("| ONERPA_")}
    assert rows == set(dialplan.SET_VARIABLES)


def test_default_queue_is_the_service_default(plan: Dialplan) -> None:
    assert plan.globals["ONERPA_DEFAULT_QUEUE"] == Settings().queue


def test_fastagi_address_is_the_service_default(plan: Dialplan) -> None:
    settings = Settings()
    assert plan.globals["ONERPA_FASTAGI"] == f"{settings.fastagi_host}:{settings.fastagi_port}"


# --- contexts, scripts and routes -----------------------------------------------------------


@pytest.mark.parametrize(
    "context",
    [
        dialplan.CONTEXT_INBOUND,
        dialplan.CONTEXT_ROUTE,
        dialplan.CONTEXT_AGENT_CONNECT,
        dialplan.CONTEXT_HANGUP,
        dialplan.CONTEXT_QUEUE_EXIT,
        dialplan.CONTEXT_CALLBACK,
        dialplan.CONTEXT_CALLBACK_ANSWERED,
    ],
)
def test_contract_context_exists(plan: Dialplan, context: str) -> None:
    assert context in plan.contexts


@pytest.mark.parametrize("route", list(Route))
def test_every_route_has_a_branch(plan: Dialplan, route: Route) -> None:
    assert route.value in plan.contexts[dialplan.CONTEXT_ROUTE]


def test_route_context_has_no_branch_for_an_unknown_route(plan: Dialplan) -> None:
    # "i" catches a value the dialplan does not know; anything else would be dead code.
    assert plan.contexts[dialplan.CONTEXT_ROUTE] - {r.value for r in Route} == {"i"}


@pytest.mark.parametrize(
    ("context", "script"),
    [
        (dialplan.CONTEXT_INBOUND, dialplan.SCRIPT_CALL),
        (dialplan.CONTEXT_AGENT_CONNECT, dialplan.SCRIPT_AGENT_CONNECT),
        (dialplan.CONTEXT_HANGUP, dialplan.SCRIPT_HANGUP),
        (dialplan.CONTEXT_QUEUE_EXIT, dialplan.SCRIPT_CALLBACK_REQUEST),
        (dialplan.CONTEXT_CALLBACK_ANSWERED, dialplan.SCRIPT_CALLBACK),
    ],
)
def test_each_context_calls_its_fastagi_script(plan: Dialplan, context: str, script: str) -> None:
    agis = [s for s in plan.in_context(context) if s.app == "AGI"]
    assert agis and {script_name(s) for s in agis} == {script}


def test_dialplan_uses_only_contract_scripts(plan: Dialplan) -> None:
    scripts = {script_name(s) for s in plan.apps("AGI")}
    assert scripts == {
        dialplan.SCRIPT_CALL,
        dialplan.SCRIPT_AGENT_CONNECT,
        dialplan.SCRIPT_HANGUP,
        dialplan.SCRIPT_CALLBACK_REQUEST,
        dialplan.SCRIPT_CALLBACK,
    }


def test_hangup_handler_is_pushed_before_the_call_agi(plan: Dialplan) -> None:
    inbound = plan.in_context(dialplan.CONTEXT_INBOUND)
    push = [i for i, s in enumerate(inbound) if "hangup_handler_push" in s.data]
    first_agi = next(i for i, s in enumerate(inbound) if s.app == "AGI")
    assert len(push) == 1 and push[0] < first_agi
    assert inbound[push[0]].data.endswith(f"={dialplan.CONTEXT_HANGUP},s,1")


def test_queue_runs_the_agent_connect_gosub_with_the_call_id(plan: Dialplan) -> None:
    (queue,) = plan.apps("Queue")
    gosub = queue.data.replace("\\,", "\x00").split(",")[6].split("\x00")
    assert gosub[0] == dialplan.CONTEXT_AGENT_CONNECT
    assert gosub[1] == "${" + dialplan.VAR_CALL_ID + "}"


def test_hangup_handler_neither_plays_nor_waits(plan: Dialplan) -> None:
    steps = plan.in_context(dialplan.CONTEXT_HANGUP)
    assert {s.app for s in steps} <= HANGUP_HANDLER_APPS
    assert steps[-1].app == "Return"


def test_agent_connect_gosub_returns(plan: Dialplan) -> None:
    assert plan.in_context(dialplan.CONTEXT_AGENT_CONNECT)[-1].app == "Return"


@pytest.mark.parametrize("did", SUPPORT_DIDS)
def test_support_number_is_routed_in_every_did_form(plan: Dialplan, did: str) -> None:
    assert did in plan.contexts[dialplan.CONTEXT_INBOUND]


# --- fallback -------------------------------------------------------------------------------


def test_fallback_is_decided_from_the_route_not_agistatus(plan: Dialplan) -> None:
    inbound = plan.in_context(dialplan.CONTEXT_INBOUND)
    branches = [s for s in plan.steps if s.app in ("GotoIf", "ExecIf")]
    assert not [s for s in branches if "AGISTATUS" in s.data.partition("?")[0]]
    calls = [i for i, s in enumerate(inbound) if s.app == "AGI"]
    for index in calls:
        following = [s for s in inbound[index + 1 :] if s.app == "GotoIf"][0]
        assert "${" + dialplan.VAR_ROUTE + "}" in following.data.partition("?")[0]


def test_fallback_marks_the_decision_and_guards_the_hours(plan: Dialplan) -> None:
    steps = plan.in_context("onerpa-fallback")
    assert f"{dialplan.VAR_DECISION}=fallback" in {s.data for s in steps if s.app == "Set"}
    assert any(s.app == "GotoIfTime" and "09:00-16:59,mon-fri" in s.data for s in steps)
    assert plan.globals["ONERPA_TIMEZONE"] == Settings().calendar.timezone
    assert "onerpa-connecting-fallback" in played(Dialplan(steps=steps))


def test_unanswered_queue_caller_is_told_and_may_leave_a_message(plan: Dialplan) -> None:
    (queue,) = plan.apps("Queue")
    after = [s for s in plan.steps if s.context == queue.context and s.exten == queue.exten]
    rest = after[after.index(queue) + 1 :]
    next_step = next(s for s in rest if s.app in ("Playback", "Hangup", "Goto"))
    assert (next_step.app, next_step.data) == ("Goto", "onerpa-fallback,busy,1")
    busy = [s for s in plan.in_context("onerpa-fallback") if s.exten == "busy"]
    assert (busy[0].app, busy[0].data) == ("Playback", "onerpa-busy-message")
    assert (busy[-1].app, busy[-1].data) == ("Goto", "message,1")
    message = [s for s in plan.in_context("onerpa-fallback") if s.exten == "message"]
    (record,) = [s for s in message if s.app == "Record"]
    assert record.data.startswith("${ONERPA_RECORDINGS_DIR}/fallback/")
    assert record.data.endswith(",3,120,k")  # silence ends it, 2 minutes at most, kept on hang-up


# --- prompts --------------------------------------------------------------------------------


def test_every_played_prompt_is_in_the_prompt_table(plan: Dialplan) -> None:
    files = played(plan)
    assert files and set(files) <= set(prompts.read_table())


# --- queues.conf and pjsip.conf -------------------------------------------------------------


def test_queue_service_level_is_the_wait_target(queues: list) -> None:
    queue = section(queues, Settings().queue)
    assert queue["servicelevel"] == [str(int(Settings().wait_target.total_seconds()))]


def test_agents_join_the_queue_from_the_dashboard_not_from_static_lines(
    queues: list, pjsip: list
) -> None:
    # Static members cannot be removed or renamed over AMI: every member is dynamic, and
    # survives a restart because Asterisk keeps it (persistentmembers).
    assert "member" not in section(queues, Settings().queue)
    assert section(queues, "general")["persistentmembers"] == ["yes"]
    text = (ASTERISK / "queues.conf").read_text(encoding="utf-8")
    for interface in re.findall(r"^; member => (PJSIP/\w+),", text, re.M):
        assert section(pjsip, interface.removeprefix("PJSIP/"), "endpoint"), interface


def test_callers_wait_for_a_paused_agent_but_not_for_an_empty_line(queues: list) -> None:
    queue = section(queues, Settings().queue)
    for rule in ("joinempty", "leavewhenempty"):
        conditions = set(queue[rule][0].split(","))
        assert "paused" not in conditions, rule  # back from lunch within the wait
        assert {"unavailable", "invalid"} <= conditions, rule


@pytest.fixture(scope="module")
def manager() -> list:
    return parse_conf((ASTERISK / "manager.conf").read_text(encoding="utf-8"))


def test_the_ami_user_may_move_agents_and_nothing_more(manager: list) -> None:
    user = section(manager, Settings().ami_username)
    # ami_08: QueueAdd/QueuePause/QueueRemove need "agent"; QueueStatus, QueueSummary and Ping
    # need none. No originate, command, system or config.
    assert user["write"] == ["agent"]
    assert user["read"] == [""]
    assert "secret" not in user  # from ONERPA_AMI_SECRET, never in the repository
    assert user["deny"] == ["0.0.0.0/0.0.0.0"]


def test_ami_listens_only_where_the_dashboard_reaches_it(manager: list) -> None:
    general = section(manager, "general")
    assert general["enabled"] == ["yes"] and general["port"] == [str(Settings().ami_port)]
    assert general["bindaddr"][0] in ("127.0.0.1", "172.30.0.1")
    compose = (ASTERISK.parent / "docker-compose.yml").read_text(encoding="utf-8")
    assert "./asterisk/manager.conf:/etc/asterisk/manager.conf:ro" in compose
    assert "/etc/asterisk/manager_secret.conf" in compose


def test_trunk_delivers_to_the_inbound_context(pjsip: list) -> None:
    assert section(pjsip, "provider", "endpoint")["context"] == [dialplan.CONTEXT_INBOUND]


def test_every_pjsip_context_exists(pjsip: list, plan: Dialplan) -> None:
    contexts = {value for _, items in pjsip for key, value in items if key == "context"}
    assert contexts <= set(plan.contexts)


def test_pjsip_holds_placeholder_credentials_only(pjsip: list) -> None:
    secrets = [value for _, items in pjsip for key, value in items if key == "password"]
    assert secrets and all(value.startswith("CHANGE-ME-") for value in secrets)


# --- what the caller hears first, and the DID in the log -------------------------------------

# res_agi.c: how long AGI() waits for a FastAGI server whose host does not answer.
MAX_AGI_CONNECT_S = 2.0


def _seconds_of(prompt: str) -> float:
    with wave.open(str(prompts.DEFAULT_OUT_DIR / f"{prompt}.wav"), "rb") as audio:
        return audio.getnframes() / audio.getframerate()


def first_sound_after_answer(plan: Dialplan, *, server_answers: bool) -> float:
    """Walk the support extension from Answer(), with the prompts' real lengths, to the
    moment the caller first hears something."""
    steps = [s for s in plan.in_context(dialplan.CONTEXT_INBOUND) if s.exten == "support"]
    start = next(i for i, s in enumerate(steps) if s.app == "Answer")
    moment = 0.0
    for step in steps[start + 1 :]:
        if step.app == "Wait":
            moment += float(step.data)
        elif step.app == "Playback":
            return moment
        elif step.app == "AGI":
            if server_answers:
                return moment  # the server's first command plays the greeting
            moment += MAX_AGI_CONNECT_S
            fallback = plan.in_context("onerpa-fallback")
            assert any(s.app == "Playback" for s in fallback)
            return moment
    raise AssertionError("the support extension never plays anything")


@pytest.mark.parametrize("server_answers", [True, False])
def test_caller_hears_a_word_within_a_second_of_answer(
    plan: Dialplan, server_answers: bool
) -> None:
    assert first_sound_after_answer(plan, server_answers=server_answers) <= 1.0


def test_the_word_before_the_server_is_short_and_the_server_goes_on_from_it(
    plan: Dialplan,
) -> None:
    support = [s for s in plan.in_context(dialplan.CONTEXT_INBOUND) if s.exten == "support"]
    before_agi = support[: next(i for i, s in enumerate(support) if s.app == "AGI")]
    played = [s.data for s in before_agi if s.app == "Playback"]
    assert played == ["onerpa-hello"]
    assert _seconds_of("onerpa-hello") < 1.5  # the server's greeting follows without a gap
    table = prompts.read_table()
    assert table["onerpa-hello"] == "Здравствуйте!"
    assert "Здравствуйте" not in table["onerpa-greeting"]


@pytest.mark.parametrize("did", SUPPORT_DIDS)
def test_the_did_as_dialled_is_kept_for_the_log(plan: Dialplan, did: str) -> None:
    steps = [s for s in plan.in_context(dialplan.CONTEXT_INBOUND) if s.exten == did]
    assert [s.app for s in steps] == ["Set", "Goto"]
    assert steps[0].data == "INBOUND_DID=${EXTEN}"
    (log,) = [s for s in plan.in_context(dialplan.CONTEXT_INBOUND) if s.exten == "support"][:1]
    assert "${INBOUND_DID}" in log.data and "CHANNEL(exten)" not in log.data


def test_hangup_handler_skips_the_server_when_no_server_took_the_call(plan: Dialplan) -> None:
    steps = plan.in_context(dialplan.CONTEXT_HANGUP)
    agi = next(i for i, s in enumerate(steps) if s.app == "AGI")
    guards = [s for s in steps[:agi] if s.app == "GotoIf" and "ONERPA_CALL_ID" in s.data]
    assert guards, "a call no server saw must not wait for a server to record its end"
    target = guards[0].data.partition("?")[2]
    assert target == "done"
    assert steps[-1].app == "Return"
    labels = re.findall(r"same\s*=>\s*n\((\w+)\),Return", EXTENSIONS.read_text(encoding="utf-8"))
    assert "done" in labels


# --- what the agent's phone shows of the caller (issue 16) ----------------------------------

# The caller's presentation as chan_pjsip sets it from the provider's INVITE.
CALLER_PRESENTATIONS = {
    "number presented": "allowed_not_screened",
    "number withheld (Privacy: id)": "prohib_not_screened",
}
SUMMARY = "${" + dialplan.VAR_SUMMARY + "}"


def app_options(text: str) -> dict[str, str]:
    """Split an options argument such as ``tb(ctx^s^1)`` into option letter -> argument."""
    options, rest = {}, text
    while rest:
        letter, rest = rest[0], rest[1:]
        argument = ""
        if rest.startswith("("):
            argument, _, rest = rest[1:].partition(")")
        options[letter] = argument
    return options


def queue_options(plan: Dialplan) -> dict[str, str]:
    (queue,) = plan.apps("Queue")
    return app_options(queue.data.replace("\\,", "\x00").split(",")[1])


def predial_steps(plan: Dialplan, location: str) -> list[Step]:
    """Return the steps a predial gosub ``context^exten^priority`` runs, up to Return()."""
    context, exten, _ = location.split("^")
    steps = [s for s in plan.in_context(context) if s.exten == exten]
    return steps[: [s.app for s in steps].index("Return") + 1]


def agent_leg(plan: Dialplan, pjsip: list, presentation: str, phone: str) -> dict[str, str]:
    """Return what ``phone``'s INVITE shows of a queued caller with ``presentation``.

    app_queue copies the caller's identity (the name set before Queue(), its presentation)
    to the connected line of the agent's channel, then runs the b() predial gosub on that
    channel. chan_pjsip, as a real Asterisk 22 showed: From carries the name only when that
    presentation is allowed (trust_id_outbound or not); P-Asserted-Identity carries it when
    send_pai is on and either trust_id_outbound is on or the presentation is allowed.
    """
    (queue,) = plan.apps("Queue")
    before = [s for s in plan.steps if (s.context, s.exten) == (queue.context, queue.exten)]
    names = [s.data.partition("=")[2] for s in before if s.data.startswith("CALLERID(name)=")]
    assert SUMMARY in names  # the caller's name is the summary before Queue()
    location = queue_options(plan).get("b")
    for step in predial_steps(plan, location) if location else []:
        target, _, value = step.data.partition("=")
        if step.app == "Set" and re.fullmatch(r"CONNECTEDLINE\(pres(,i)?\)", target):
            presentation = value
    endpoint = section(pjsip, phone, "endpoint")
    allowed = presentation.startswith("allowed")
    trusted = endpoint.get("trust_id_outbound") == ["yes"]
    shown = {"From": SUMMARY if allowed else "Anonymous"}
    if endpoint.get("send_pai") == ["yes"] and (trusted or allowed):
        shown["P-Asserted-Identity"] = SUMMARY
    return shown


@pytest.mark.parametrize("presentation", CALLER_PRESENTATIONS.values(), ids=CALLER_PRESENTATIONS)
def test_agent_phone_shows_the_summary_even_for_a_withheld_number(
    plan: Dialplan, pjsip: list, queues: list, presentation: str
) -> None:
    # The agents' phones: dynamic members now, listed as the commented examples of queues.conf.
    text = (ASTERISK / "queues.conf").read_text(encoding="utf-8")
    phones = re.findall(r"^; member => PJSIP/(\w+),", text, re.M)
    assert phones
    for phone in phones:
        shown = agent_leg(plan, pjsip, presentation, phone)
        assert shown == {"From": SUMMARY, "P-Asserted-Identity": SUMMARY}, phone


def test_presentation_is_allowed_on_the_agent_leg_only(plan: Dialplan) -> None:
    # Queue's b() runs on each agent's new channel; B() would run on the caller's.
    options = queue_options(plan)
    assert "b" in options and "B" not in options
    ring = predial_steps(plan, options["b"])
    assert [s.app for s in ring] == ["Set", "Return"]
    assert ring[0].data == "CONNECTEDLINE(pres,i)=allowed_passed_screen"
    # Nothing else changes a presentation: the caller's channel keeps the withheld one.
    changes = [s for s in plan.apps("Set") + plan.apps("ExecIf") if "pres" in s.data]
    assert changes == ring[:1]
    # The predial context is reached from Queue() only, never dialled towards anyone else.
    context = options["b"].split("^")[0]
    elsewhere = [s for s in plan.steps if context in s.data and s.app != "Queue"]
    assert elsewhere == []


def test_no_call_leg_goes_out_to_the_provider_but_the_call_back(
    plan: Dialplan, pjsip: list
) -> None:
    # A withheld number is never sent out: nothing is dialled through the trunk but the
    # call-back of a request, which presents the support number (see below), and the trunk
    # would not be trusted with a caller's identity anyway (tests/test_pjsip_config.py).
    inside = [s for s in plan.apps("Dial") if s.context != dialplan.CONTEXT_CALLBACK]
    targets = [s.data.split(",")[0] for s in inside]
    assert targets and all(t.startswith("PJSIP/") and "@" not in t for t in targets)
    assert not any("provider" in t for t in targets)
    outside = [s for s in plan.apps("Dial") if s.context == dialplan.CONTEXT_CALLBACK]
    number = "${" + dialplan.VAR_CALLBACK_NUMBER + "}"
    assert [s.data.split(",")[0] for s in outside] == [f"PJSIP/{number}@provider"]
    assert section(pjsip, "provider", "endpoint")["trust_id_outbound"] == ["no"]


# --- call-backs (docs/callbacks.md) ---------------------------------------------------------


def test_queue_exit_context_and_offer_are_configured(queues: list) -> None:
    queue = section(queues, Settings().queue)
    assert queue["context"] == [dialplan.CONTEXT_QUEUE_EXIT]
    assert queue["periodic-announce"] == ["onerpa-callback-offer"]
    # The offer comes once the answer target has passed, not before.
    frequency = int(queue["periodic-announce-frequency"][0])
    assert frequency == int(Settings().wait_target.total_seconds())
    assert queue["announce-position"] == ["yes"]
    assert queue["announce-holdtime"][0] in ("yes", "once")


def test_queue_offer_prompt_says_press_one_and_the_place_is_kept() -> None:
    table = prompts.read_table()
    assert "нажмите один" in table["onerpa-callback-offer"]
    assert "очередь сохранится" in table["onerpa-callback-offer"]


def test_only_a_caller_with_a_number_has_the_call_back_key(plan: Dialplan) -> None:
    # app_queue looks the key up with the caller's number: a withheld one matches nothing.
    keys = {e for e in plan.contexts[dialplan.CONTEXT_QUEUE_EXIT] if e.startswith("1")}
    assert keys and all("/" in key for key in keys)
    patterns = [key.partition("/")[2] for key in keys]
    assert all(re.fullmatch(r"_\+?X\.", p) for p in patterns)
    assert any(key == dialplan.CALLBACK_KEY + "/_X." for key in keys)


def test_queue_exit_thanks_the_accepted_and_requeues_the_refused(plan: Dialplan) -> None:
    steps = plan.in_context(dialplan.CONTEXT_QUEUE_EXIT)
    agi = next(s for s in steps if s.app == "AGI")
    assert agi.data.endswith(f"/{dialplan.SCRIPT_CALLBACK_REQUEST},${{{dialplan.VAR_CALL_ID}}}")
    decided = next(s for s in steps if s.app == "GotoIf" and dialplan.VAR_CALLBACK in s.data)
    assert f'"{dialplan.CALLBACK_ACCEPTED}"' in decided.data
    apps = [(s.app, s.data) for s in steps]
    assert ("Playback", "onerpa-callback-refused") in apps
    assert ("Goto", f"{dialplan.CONTEXT_ROUTE},queue,enter") in apps
    assert ("Playback", "onerpa-callback-accepted") in apps


def test_call_back_presents_the_support_number_and_hooks_the_answer(plan: Dialplan) -> None:
    steps = plan.in_context(dialplan.CONTEXT_CALLBACK)
    shown = [s.data for s in steps if s.app == "Set" and s.data.startswith("CALLERID(num)=")]
    assert shown == ["CALLERID(num)=${ONERPA_CALLBACK_CALLERID}"]
    assert plan.globals["ONERPA_CALLBACK_CALLERID"] == "74997195581"
    dial = next(s for s in steps if s.app == "Dial")
    gosub = app_options(dial.data.split(",", 2)[2])["U"].split("^")
    assert gosub[:3] == [dialplan.CONTEXT_CALLBACK_ANSWERED, "s", "1"]
    assert gosub[3] == "${" + dialplan.VAR_REQUEST_ID + "}"
    assert gosub[4] == "${" + dialplan.VAR_CALLBACK_AGENT + "}"


def test_answered_call_back_is_recorded_then_ended_by_the_hangup_handler(plan: Dialplan) -> None:
    steps = plan.in_context(dialplan.CONTEXT_CALLBACK_ANSWERED)
    agi = next(i for i, s in enumerate(steps) if s.app == "AGI")
    push = next(i for i, s in enumerate(steps) if "hangup_handler_push" in s.data)
    assert agi < push and steps[push].data.endswith(f"={dialplan.CONTEXT_HANGUP},s,1")
    assert steps[-1].app == "Return"


def test_call_file_context_is_the_dialplans(plan: Dialplan) -> None:
    from onerpa import callback

    assert callback.CONTEXT == dialplan.CONTEXT_CALLBACK
    text = callback.call_file(
        7,
        interface="PJSIP/101",
        number="74951234567",
        agent="anna",
        shown_name="x",
        ring_seconds=30,
    )
    setvars = {
        line.split(": ", 1)[1].split("=")[0]
        for line in text.splitlines()
        if line.startswith("Setvar:")
    }
    assert setvars == set(dialplan.CALL_FILE_VARIABLES)
