"""pjsip.conf as a real chan_pjsip showed it must be: the trunk, the staff phones, NAT."""

from __future__ import annotations

import re

import pytest

from tests.test_dialplan_config import ASTERISK, parse_conf, section

PJSIP = ASTERISK / "pjsip.conf"
OPERATIONS = ASTERISK.parent / "docs" / "operations.md"
STAFF_CONTEXT = "onerpa-agents"  # the context of the agent and sales phones
NAT_OPTIONS = ("external_media_address", "external_signaling_address", "local_net")


@pytest.fixture(scope="module")
def pjsip() -> list:
    return parse_conf(PJSIP.read_text(encoding="utf-8"))


def endpoints(sections: list) -> dict[str, dict[str, str]]:
    """Return every endpoint by name, its options (templates applied; the last value wins)."""
    found: dict[str, dict[str, str]] = {}
    for name, items in sections:
        options = dict(items)
        if options.get("type") == "endpoint":
            found.setdefault(name, {}).update(options)
    return found


def raw_section(text: str, name: str) -> list[str]:
    """Return the lines of section ``[name]`` as written, comments included."""
    lines: list[str] = []
    inside = False
    for line in text.splitlines():
        if re.match(r"^\[[^]]+\]", line):
            inside = line.startswith(f"[{name}]")
            continue
        if inside:
            lines.append(line.strip())
    return lines


# --- the trunk ------------------------------------------------------------------------------


def test_trunk_answers_404_not_484_to_a_prefix_of_the_support_number(pjsip: list) -> None:
    # With overlap dialling (the default) chan_pjsip answers 484 Address Incomplete to a DID
    # that begins a support form, e.g. 7499719558; the README promises 404.
    assert section(pjsip, "provider", "endpoint")["allow_overlap"] == ["no"]


def test_trunk_is_never_sent_a_withheld_identity(pjsip: list) -> None:
    assert section(pjsip, "provider", "endpoint")["trust_id_outbound"] == ["no"]
    # Nor is any other endpoint but the staff phones.
    for name, endpoint in endpoints(pjsip).items():
        if endpoint.get("trust_id_outbound") == "yes":
            assert endpoint.get("context") == STAFF_CONTEXT, name


# --- the staff phones -----------------------------------------------------------------------


def test_staff_phones_are_told_who_calls_in_p_asserted_identity(pjsip: list) -> None:
    staff = {name: e for name, e in endpoints(pjsip).items() if e.get("context") == STAFF_CONTEXT}
    assert set(staff) == {"101", "102", "103", "200"}
    for name, endpoint in staff.items():
        assert endpoint.get("trust_id_outbound") == "yes", name
        assert endpoint.get("send_pai") == "yes", name


# --- NAT --------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", NAT_OPTIONS)
def test_transport_documents_the_nat_settings_an_installer_fills_in(
    pjsip: list, option: str
) -> None:
    lines = raw_section(PJSIP.read_text(encoding="utf-8"), "transport-udp")
    assert any(re.fullmatch(rf";\s*{option}\s*=\s*CHANGE-ME-\S+", line) for line in lines)
    # Commented: a PBX with a public address needs none of them.
    assert option not in section(pjsip, "transport-udp", "transport")


def test_operations_says_when_the_nat_settings_are_needed() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    nat = re.split(r"\n#{2,3} ", text.split("\n### NAT\n", 1)[1], maxsplit=1)[0]
    for option in NAT_OPTIONS:
        assert f"`{option}`" in nat, option
