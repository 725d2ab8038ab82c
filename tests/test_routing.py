"""Routing rules: first match wins, AND across keys, OR within a key, fan-out, the default route."""

from __future__ import annotations

from typing import Any

import pytest

from router.config import DefaultRoute, MatchConfig, RouteConfig
from router.routing import RoutingTable
from schemas import Envelope, Party, new_guid

MUNICIPALITY = Party(eik="000695235", guid="8f2b3c4d-1a2b-4c3d-9e8f-0a1b2c3d4e5f", name="Община")
REGION = Party(eik="121759222", guid="{abcdef12-2222-4333-8444-55555555aaaa}", name="Областна администрация")
MINISTRY = Party(eik="831902088", name="Министерство")


def rule(name: str, *deliver_to: str, **match: Any) -> RouteConfig:
    return RouteConfig(name=name, match=MatchConfig(**match), deliver_to=list(deliver_to))


def envelope(**fields: Any) -> Envelope:
    data: dict[str, Any] = {
        "document_guid": new_guid(),
        "source": "ais",
        "sender": MUNICIPALITY,
        "recipient": REGION,
        "kind": "Заповед",
    }
    data.update(fields)
    return Envelope(**data)


def resolved(table: RoutingTable, env: Envelope) -> tuple[str, tuple[str, ...]] | None:
    route = table.resolve(env)
    return None if route is None else (route.name, route.destinations)


def test_first_matching_rule_wins_in_file_order() -> None:
    by_kind = rule("orders", "archive", kind=["Заповед"])
    by_recipient = rule("region", "seos", recipient_eik=["121759222"])
    assert resolved(RoutingTable([by_kind, by_recipient], None), envelope()) == ("orders", ("archive",))
    assert resolved(RoutingTable([by_recipient, by_kind], None), envelope()) == ("region", ("seos",))


def test_a_rule_that_does_not_fit_is_skipped() -> None:
    table = RoutingTable([rule("ministry", "seos", recipient_eik=["831902088"]), rule("rest", "archive")], None)
    assert resolved(table, envelope()) == ("rest", ("archive",))
    assert resolved(table, envelope(recipient=MINISTRY)) == ("ministry", ("seos",))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, True),
        ({"kind": "Молба"}, False),  # the sender fits, the kind does not
        ({"sender": MINISTRY}, False),  # the kind fits, the sender does not
        ({"source": "other-ais"}, False),
        ({"procedure_code": "9999"}, False),
    ],
)
def test_all_keys_must_fit(fields: dict[str, Any], expected: bool) -> None:
    table = RoutingTable(
        [rule("strict", "seos", source=["ais"], sender_eik=["000695235"], kind=["Заповед"], procedure_code=["2115"])],
        None,
    )
    env = envelope(**{"procedure_code": "2115", **fields})
    assert (table.resolve(env) is not None) is expected


@pytest.mark.parametrize(("kind", "expected"), [("Заповед", True), ("Молба", True), ("Жалба", False)])
def test_any_value_within_a_key_fits(kind: str, expected: bool) -> None:
    table = RoutingTable([rule("either", "seos", kind=["Заповед", "Молба"])], None)
    assert (table.resolve(envelope(kind=kind)) is not None) is expected


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        ("заповед", "Заповед"),
        ("ЗАПОВЕД", "заповед"),
        ("Заповед", "ЗаПоВеД"),
        (" Заповед ", "заповед "),
        ("Order", "ORDER"),
    ],
)
def test_kind_is_matched_case_insensitively(configured: str, sent: str) -> None:
    table = RoutingTable([rule("orders", "seos", kind=[configured])], None)
    assert resolved(table, envelope(kind=sent)) == ("orders", ("seos",))


def test_kind_match_does_not_match_a_document_without_a_kind() -> None:
    table = RoutingTable([rule("orders", "seos", kind=["Заповед"])], None)
    assert table.resolve(envelope(kind="")) is None


def test_guids_match_whatever_their_spelling() -> None:
    assert REGION.guid == "{abcdef12-2222-4333-8444-55555555aaaa}"
    table = RoutingTable([rule("by-guid", "seos", recipient_guid=["ABCDEF12-2222-4333-8444-55555555AAAA"])], None)
    assert resolved(table, envelope()) == ("by-guid", ("seos",))
    assert table.resolve(envelope(recipient=MINISTRY)) is None


def test_sender_guid_and_eik_with_blanks_in_the_config() -> None:
    table = RoutingTable(
        [
            rule(
                "from-municipality",
                "seos",
                sender_eik=[" 000695235 "],
                sender_guid=["{8F2B3C4D-1A2B-4C3D-9E8F-0A1B2C3D4E5F}"],
            )
        ],
        None,
    )
    assert table.resolve(envelope()) is not None


def test_fan_out_to_several_destinations_in_order() -> None:
    table = RoutingTable([rule("copy", "seos", "archive", "audit", kind=["Заповед"])], None)
    assert resolved(table, envelope()) == ("copy", ("seos", "archive", "audit"))
    assert table.destinations == {"seos", "archive", "audit"}


def test_default_route_takes_what_no_rule_fits() -> None:
    table = RoutingTable(
        [rule("ministry", "seos", recipient_eik=["831902088"])], DefaultRoute(deliver_to=["archive", "operator"])
    )
    assert resolved(table, envelope()) == ("default", ("archive", "operator"))
    assert resolved(table, envelope(recipient=MINISTRY)) == ("ministry", ("seos",))
    assert table.destinations == {"seos", "archive", "operator"}


def test_no_rule_and_no_default_resolves_to_none() -> None:
    table = RoutingTable([rule("ministry", "seos", recipient_eik=["831902088"])], None)
    assert table.resolve(envelope()) is None
    assert RoutingTable([], None).resolve(envelope()) is None


def test_a_rule_without_match_takes_everything() -> None:
    table = RoutingTable([rule("all", "archive")], DefaultRoute(deliver_to=["seos"]))
    for env in (envelope(), envelope(kind="", sender=Party(), recipient=Party(), source="")):
        assert resolved(table, env) == ("all", ("archive",))
