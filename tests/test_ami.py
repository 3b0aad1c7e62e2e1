"""The AMI client against the bytes of a real Asterisk 22.10.1 (data/asterisk/ami/).

Each test replays a recorded session over a real socket (tests/amifake.py): the banner,
responses split over several segments or several messages in one, events after responses,
EventList lists, errors, Goodbye, and the connection closed by ``core stop now``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from onerpa.ami import (
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiConnectionError,
    FrameReader,
    Message,
    QueueMember,
    encode_action,
)
from tests.amifake import (
    DATA,
    QueueAsterisk,
    ScriptedAmi,
    Step,
    read_session,
    received_bytes,
)

SECRET = "Adm1nSecret"


@pytest.fixture
def servers() -> Iterator[list]:
    """Fake servers and clients started by the test; all closed after it."""
    started: list = []
    yield started
    for item in reversed(started):
        item.close()


def replay(servers: list, *scripts: list[Step], split: int | None = None) -> ScriptedAmi:
    server = ScriptedAmi(*scripts, split=split)
    servers.append(server)
    return server


def client_of(server: ScriptedAmi, *, events: str = "off", user: str = "admin") -> AmiClient:
    client = AmiClient("127.0.0.1", server.port, user, SECRET, timeout=5, events=events)
    server.clients.append(client)
    return client


# -- framing ------------------------------------------------------------------------------


def test_the_full_event_stream_of_two_queue_calls_parses_into_its_242_messages() -> None:
    stream = received_bytes(read_session("ami_04b_queue_call_events_on_full_raw.txt", "A"))
    reader = FrameReader()
    messages = reader.feed(stream)
    assert reader.banner == "Asterisk Call Manager/11.0.0"
    assert len(messages) == 242
    byte_by_byte = FrameReader()
    again = [m for i in range(len(stream)) for m in byte_by_byte.feed(stream[i : i + 1])]
    assert again == messages


def test_values_keep_their_spaces_and_empty_values_stay_empty() -> None:
    stream = received_bytes(read_session("ami_09_framing.txt", "A"))
    messages = FrameReader().feed(stream)
    trailing = next(m for m in messages if m.action_id == "trailing   ")
    assert trailing["Message"].startswith("Invalid/unknown command: Ping   .")
    command = next(m for m in messages if m.action_id == "cmd-1")
    assert command.get_all("Output") == ["System uptime: 35", "Last reload: 35"]
    # An error reply whose empty line came in a segment of its own.
    failed = next(m for m in messages if m.action_id == "cmd-2")
    assert failed.response == "Error" and "No such command" in failed["Output"]
    recorded = FrameReader().feed(received_bytes(read_session("ami_02_queue_members.txt", "A")))
    member = QueueMember.from_message(next(m for m in recorded if m.event == "QueueMemberAdded"))
    assert member.name == "Agent One" and member.paused_reason == ""


def test_a_value_with_a_line_break_is_refused_before_it_reaches_asterisk() -> None:
    with pytest.raises(ValueError, match="MemberName"):
        encode_action("QueueAdd", {"MemberName": "Anna\r\nAction: Originate"}, "x")


# -- login --------------------------------------------------------------------------------


def test_login_is_accepted_and_the_events_after_it_are_kept(servers: list) -> None:
    server = replay(servers, read_session("ami_01_login.txt", "S1"))
    client = client_of(server, events="on")
    accepted = client.connect()
    assert accepted["Message"] == "Authentication accepted"
    login = server.received[0]
    assert (login["Action"], login["Username"], login["Secret"]) == ("Login", "admin", SECRET)
    assert login.action_id == accepted.action_id  # echoed as the second line
    again = client.action("Login", {"Username": "admin", "Secret": SECRET})
    assert again["Message"] == "Already authenticated"
    assert [client.next_event(1).event, client.next_event(1).event] == [
        "FullyBooted",
        "SuccessfulAuth",
    ]
    client.close()
    assert not client.connected and server.received[-1]["Action"] == "Logoff"


@pytest.mark.parametrize("session", ["S2", "S3"])  # wrong secret; unknown user
def test_a_refused_login_raises_and_leaves_no_session(servers: list, session: str) -> None:
    server = replay(servers, read_session("ami_01_login.txt", session))
    client = client_of(server)
    with pytest.raises(AmiAuthError, match="Authentication failed"):
        client.connect()
    assert not client.connected


def test_a_user_without_the_agent_class_is_told_permission_denied_and_stays_on(
    servers: list,
) -> None:
    steps = read_session("ami_08_permissions.txt", "V")
    server = replay(servers, steps)
    client = client_of(server, user="viewer")
    assert client.ping()["Ping"] == "Pong"
    for attempt in (
        lambda: client.queue_add("support", "Local/agent1@agents/n", "Agent One", ""),
        lambda: client.queue_pause("support", "Local/agent1@agents/n", True),
        lambda: client.queue_remove("support", "Local/agent1@agents/n"),
    ):
        with pytest.raises(AmiActionError) as refused:
            attempt()
        assert refused.value.permission_denied
    with pytest.raises(AmiActionError, match="Permission denied"):
        client.originate("Local/agent1@agents", "orig-dest", "s")
    with pytest.raises(AmiActionError, match="Permission denied"):
        client.action("Command", {"Command": "core show uptime"})
    assert [p.queue for p in client.queue_status("support").queues] == ["support"]
    [summary] = client.queue_summary("support")
    assert summary.logged_in == 0
    client.close()


# -- queue members ------------------------------------------------------------------------


def test_queue_add_pause_remove_and_every_error_reply(servers: list) -> None:
    server = replay(servers, read_session("ami_02_queue_members.txt", "A"), split=9)
    client = client_of(server, events="on")
    agent = ("support", "Local/agent1@agents/n")
    client.connect()
    added = client.queue_add(*agent, "Agent One", "Local/agent1@agents", penalty=1)
    assert added["Message"] == "Added interface to queue"
    sent = server.received[-1]
    assert (sent["MemberName"], sent["StateInterface"], sent["Paused"]) == (
        "Agent One",
        "Local/agent1@agents",
        "false",
    )
    errors = []
    for attempt in (
        lambda: client.queue_add(*agent, "Agent One", "Local/agent1@agents", penalty=1),
        lambda: client.queue_add(
            "nosuchqueue", agent[1], "Agent One", "Local/agent1@agents", penalty=1
        ),
        lambda: client.action("QueueAdd", {"Queue": "support", "MemberName": "Agent One"}),
    ):
        with pytest.raises(AmiActionError) as refused:
            attempt()
        errors.append(refused.value.message)
    assert errors == [
        "Unable to add interface: Already there",
        "Unable to add interface to queue: No such queue",
        "'Interface' not specified.",
    ]
    paused = client.queue_pause(*agent, True, "Lunch break")
    assert paused["Message"] == "Interface paused successfully"
    assert server.received[-1]["Reason"] == "Lunch break"
    assert client.queue_pause(*agent, False)["Message"] == "Interface unpaused successfully"
    with pytest.raises(AmiActionError, match="Interface not found"):
        client.queue_pause("support", "Local/agent9@agents/n", True, "x")
    with pytest.raises(AmiActionError, match="Need 'Interface' and 'Paused' parameters."):
        client.action("QueuePause", {"Queue": "support", "Interface": agent[1]})
    everywhere = {"Interface": agent[1], "Paused": "true", "Reason": "All queues"}
    client.action("QueuePause", everywhere)
    client.action("QueuePause", {"Interface": agent[1], "Paused": "false"})
    assert client.queue_remove(*agent)["Message"] == "Removed interface from queue"
    with pytest.raises(AmiActionError, match="Unable to remove interface: Not there"):
        client.queue_remove(*agent)
    with pytest.raises(AmiActionError, match="No such queue"):
        client.queue_remove("nosuchqueue", agent[1])
    client.queue_add("sales", "Local/agent2@agents/n", "Agent Two", "", paused=True, reason="x")
    client.queue_remove("sales", "Local/agent2@agents/n")
    client.close()
    # The events each action caused came after its response, without an ActionID.
    events = []
    while (event := client._events and client._events.popleft()) is not None and event:
        events.append(event)
    changes = [e for e in events if e.event and e.event.startswith("QueueMember")]
    assert [e.event for e in changes][:3] == [
        "QueueMemberAdded",
        "QueueMemberPause",
        "QueueMemberPause",
    ]
    pause = QueueMember.from_message(changes[1])
    assert (pause.paused, pause.paused_reason, pause.membership) == (True, "Lunch break", "dynamic")


# -- queue status -------------------------------------------------------------------------


@pytest.mark.parametrize("split", [None, 1, 7])
def test_queue_status_and_summary_in_every_state(servers: list, split: int | None) -> None:
    server = replay(servers, read_session("ami_03_queue_status.txt", "Q"), split=split)
    client = client_of(server)
    everything = client.queue_status()
    assert [q.queue for q in everything.queues] == ["support", "sales"]
    assert not everything.members and not everything.entries
    assert not client.queue_status("support").members
    assert len(client.queue_summary()) == 2
    assert client.queue_summary("support")[0].logged_in == 0
    client.queue_add("support", "Local/agent1@agents/n", "Agent One", "Local/agent1@agents")
    [idle] = client.queue_status("support").members
    assert (idle.name, idle.interface, idle.status, idle.paused) == (
        "Agent One",
        "Local/agent1@agents/n",
        1,
        False,
    )
    assert client.queue_summary("support")[0].available == 1
    client.queue_pause("support", idle.interface, True, "Lunch break")
    [paused] = client.queue_status("support").members
    assert paused.paused and paused.paused_reason == "Lunch break" and paused.last_pause
    assert client.queue_summary("support")[0].available == 0
    client.queue_pause("support", idle.interface, False)
    ringing = client.queue_status("support")
    assert ringing.members[0].status == 2 and not ringing.members[0].in_call
    [caller] = ringing.entries
    assert (caller.position, caller.caller_number, caller.wait) == (1, "+79161234567", 2)
    assert client.queue_summary("support")[0].longest_hold_time == 2
    in_call = client.queue_status("support")
    assert in_call.members[0].in_call and not in_call.entries
    client.queue_summary("support")
    client.queue_pause("support", idle.interface, True, "Meeting")
    two = client.queue_status()
    assert [e.position for e in two.entries] == [1, 2]
    assert [e.caller_number for e in two.entries] == ["+79161234567", "+79035550142"]
    assert two.members[0].paused_reason == "Meeting" and two.members[0].calls_taken == 1
    client.queue_status("support")
    client.queue_summary()
    assert client.queue_summary("support")[0].callers == 2
    filtered = client.list_action("QueueStatus", {"Queue": "support", "Member": "Agent One"})
    assert len(filtered) == 4
    assert client.queue_status("nosuchqueue").queues == ()
    assert client.queue_summary("nosuchqueue") == []
    client.queue_remove("support", idle.interface)
    client.close()
    assert server.finished.wait(5)


# -- events -------------------------------------------------------------------------------

CALL_EVENTS = [
    "QueueMemberAdded",
    # call 1: answered
    "QueueCallerJoin",
    "AgentCalled",
    "QueueMemberStatus",
    "QueueCallerLeave",
    "AgentConnect",
    "AgentComplete",
    "QueueMemberStatus",
    # call 2: the caller gives up while the member rings
    "QueueCallerJoin",
    "AgentCalled",
    "QueueMemberStatus",
    "QueueCallerAbandon",
    "QueueCallerLeave",
    "QueueMemberStatus",
    "QueueMemberRemoved",
]


def test_the_agent_events_of_an_answered_and_an_abandoned_call(servers: list) -> None:
    server = replay(servers, read_session("ami_04_queue_call_events.txt", "C"))
    client = client_of(server, events="agent")
    client.connect()
    assert server.received[0]["Events"] == "agent"
    events = [client.next_event(5) for _ in CALL_EVENTS]
    assert [e.event for e in events] == CALL_EVENTS
    connect = events[5]
    assert (connect["MemberName"], connect.integer("HoldTime")) == ("Agent One", 2)
    assert connect["CallerIDNum"] == "+79161234567"
    ringing = QueueMember.from_message(events[3])
    assert (ringing.status, ringing.in_call) == (2, False)
    assert events[6]["Reason"] == "agent" and events[6].integer("TalkTime") == 6
    assert events[11].integer("HoldTime") == 4
    client.close()


# -- originate ----------------------------------------------------------------------------


def _originate_script(action_id: str) -> list[Step]:
    """Session C's bytes, with session A's reply to its Originate where A got it."""
    steps = read_session("ami_05_originate.txt", "C")
    login = steps[
        : next(i for i, s in enumerate(steps) if s[0] == "RX" and b"accepted" in s[1]) + 1
    ]
    events = [s for s in steps[len(login) :] if s[0] == "RX"]
    upto = next(i for i, s in enumerate(events) if f"ActionID: {action_id}\r\n".encode() in s[1])
    request = f"Action: Originate\r\nActionID: {action_id}\r\n\r\n".encode()
    reply = (
        f"Response: Success\r\nActionID: {action_id}\r\n"
        "Message: Originate successfully queued\r\n\r\n"
    ).encode()
    return [*login, ("TX", request), ("RX", reply), *events[: upto + 1]]


def test_originate_returns_the_originate_response_among_the_call_events(servers: list) -> None:
    server = replay(servers, _originate_script("orig-ok"))
    client = client_of(server, events="call")
    result = client.originate(
        "Local/agent1@agents",
        "orig-dest",
        "s",
        caller_id='"AMI Test" <+74950001122>',
        variables={"X": "hello", "GREETING": "hi there"},
    )
    assert result.event == "OriginateResponse"
    assert (result.response, result["Reason"], result["Uniqueid"]) == (
        "Success",
        "4",
        "1796431612.46",
    )
    sent = server.received[-1]
    assert sent.get_all("Variable") == ["X=hello", "GREETING=hi there"]
    assert sent["Async"] == "true"


@pytest.mark.parametrize(("action_id", "reason"), [("orig-noanswer", "3"), ("orig-busy", "5")])
def test_originate_failures_come_back_with_their_reason(
    servers: list, action_id: str, reason: str
) -> None:
    script = _originate_script(action_id)
    server = replay(servers, script)
    result = client_of(server, events="call").originate("Local/agent1@agents", "orig-dest", "s")
    assert (result.response, result["Reason"], result["Uniqueid"]) == (
        "Failure",
        reason,
        "<unknown>",
    )


def test_originate_to_a_missing_extension_is_refused_at_once(servers: list) -> None:
    login = read_session("ami_07_ping.txt", "A")[:3]
    error = (
        b"Response: Error\r\nActionID: orig-baddest\r\nMessage: Extension does not exist.\r\n\r\n"
    )
    request = b"Action: Originate\r\nActionID: orig-baddest\r\n\r\n"
    server = replay(servers, [*login, ("TX", request), ("RX", error)])
    with pytest.raises(AmiActionError, match="Extension does not exist."):
        client_of(server).originate("Local/agent1@agents", "orig-dest", "nosuch")


# -- ping, shutdown, reconnect ------------------------------------------------------------


def test_ping_replies_split_over_segments(servers: list) -> None:
    steps = read_session("ami_07_ping.txt", "A")
    # The client always sends an ActionID: leave out the recorded Ping without one.
    bare = next(i for i, s in enumerate(steps) if s == ("TX", b"Action: Ping\r\n\r\n"))
    server = replay(servers, steps[:bare] + steps[bare + 2 :])
    client = client_of(server)
    replies = [client.ping() for _ in range(3)]
    assert [r["Ping"] for r in replies] == ["Pong"] * 3
    assert replies[0]["Timestamp"] == "1796431789.834505"
    client.close()


def test_shutdown_closes_the_session_and_the_next_action_logs_in_again(servers: list) -> None:
    stopped = read_session("ami_06_reload_shutdown.txt", "A", nth=2)  # core restart now
    after = read_session("ami_06_reload_shutdown.txt", "B", nth=1)
    server = replay(servers, stopped, after)
    client = client_of(server, events="system")
    client.connect()
    assert client.next_event(5).event == "FullyBooted"
    shutdown = client.next_event(5)
    assert (shutdown.event, shutdown["Restart"]) == ("Shutdown", "True")
    with pytest.raises(AmiConnectionError, match="shut down"):
        client.next_event(5)
    assert not client.connected and client.shutdown_seen
    # Asterisk is back: the next call connects and logs in again.
    assert client.next_event(5).event == "FullyBooted"
    assert [m["Action"] for m in server.received] == ["Login", "Login"]
    client.close()


def test_core_stop_now_is_an_eof_for_a_session_with_events_off(servers: list) -> None:
    steps = read_session("ami_06_reload_shutdown.txt", "B")  # Events: off, then core stop now
    server = replay(servers, steps)
    client = client_of(server)
    assert client.ping()["Ping"] == "Pong"
    with pytest.raises(AmiConnectionError):
        client.ping()
    assert not client.connected


def test_asterisk_down_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(AmiConnectionError, match="no connection"):
        AmiClient("127.0.0.1", port, "admin", SECRET, timeout=2).ping()


def test_a_silent_peer_ends_in_a_connection_error_not_a_hang() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
    thread.start()
    try:
        client = AmiClient("127.0.0.1", listener.getsockname()[1], "a", "b", timeout=0.3)
        with pytest.raises(AmiConnectionError, match="banner"):
            client.connect()
    finally:
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


# -- the stateful fake speaks the recorded bytes -------------------------------------------


def _reply_to(steps: list[Step], action_id: str) -> bytes:
    start = next(
        i
        for i, s in enumerate(steps)
        if s[0] == "TX" and f"ActionID: {action_id}\r\n".encode() in s[1]
    )
    rest = steps[start + 1 :]
    end = next((i for i, s in enumerate(rest) if s[0] != "RX"), len(rest))
    return b"".join(data for _, data in rest[:end])


def test_the_queue_fake_answers_in_the_recorded_bytes() -> None:
    steps = read_session("ami_03_queue_status.txt", "Q")
    moment = [1796431544]
    fake = QueueAsterisk(("support", "sales"), clock=lambda: moment[0])
    try:
        fake.queues["support"].strategy = fake.queues["sales"].strategy = "ringall"
        fake.queues["sales"].service_level = 30

        def ask(action: str, action_id: str, **headers: str) -> bytes:
            message = Message((("Action", action), ("ActionID", action_id), *headers.items()))
            return getattr(fake, f"_{action.lower()}")(message, action_id)

        assert ask("QueueStatus", "qs-all-nomembers") == _reply_to(steps, "qs-all-nomembers")
        add = {"Queue": "support", "Interface": "Local/agent1@agents/n", "MemberName": "Agent One"}
        added = ask("QueueAdd", "add-1", **add, StateInterface="Local/agent1@agents")
        assert added == _reply_to(steps, "add-1")
        idle = ask("QueueStatus", "qs-support-idle", Queue="support")
        assert idle == _reply_to(steps, "qs-support-idle")
        summary = ask("QueueSummary", "qsum-support-idle", Queue="support")
        assert summary == _reply_to(steps, "qsum-support-idle")
        moment[0] = 1796431545
        pause = {"Queue": "support", "Interface": "Local/agent1@agents/n", "Paused": "true"}
        assert ask("QueuePause", "pause-1", **pause, Reason="Lunch break") == _reply_to(
            steps, "pause-1"
        )
        paused = ask("QueueStatus", "qs-support-paused", Queue="support")
        assert paused == _reply_to(steps, "qs-support-paused")
        assert ask("QueueStatus", "qs-nosuchqueue", Queue="nosuchqueue") == _reply_to(
            steps, "qs-nosuchqueue"
        )
    finally:
        fake.close()


def test_transcripts_are_copied_with_their_headers() -> None:
    for path in sorted(DATA.glob("ami_*.txt")):
        assert path.read_text(encoding="utf-8").startswith(f"TRANSCRIPT: {path.name}\n")
    assert (DATA / "README.md").exists()
