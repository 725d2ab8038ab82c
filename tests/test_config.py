"""The configuration file: what an operator writes, and the errors that tell them what to fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from router.config import load_config
from schemas.errors import ConfigError

DESTINATIONS = """\
connections:
  ais: {adapter: filedrop, inbox: in}
  seos: {adapter: seos}
  archive: {adapter: filedrop, outbox: out}
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A KURIER_* variable in the developer's shell must not change what these tests see.
    for name in list(os.environ):
        if name.upper().startswith("KURIER_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "kurier.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_file_loads_with_routes_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        DESTINATIONS
        + """\
routes:
  - name: orders
    match:
      sender_eik: [' 000695235 ']
      kind: [ЗАПОВЕД, Молба]
      recipient_guid: ['8F2B3C4D-1A2B-4C3D-9E8F-0A1B2C3D4E5F']
    deliver_to: [seos, archive]
default_route: {deliver_to: [archive]}
limits: {max_xml_bytes: 2048}
""",
    )
    cfg = load_config(path)
    (route,) = cfg.routes
    assert route.name == "orders"
    assert route.deliver_to == ["seos", "archive"]
    assert route.match.sender_eik == ["000695235"]
    assert route.match.kind == ["заповед", "молба"]
    assert route.match.recipient_guid == ["{8f2b3c4d-1a2b-4c3d-9e8f-0a1b2c3d4e5f}"]
    assert cfg.default_route is not None and cfg.default_route.deliver_to == ["archive"]
    assert cfg.limits.max_xml_bytes == 2048
    assert cfg.connections["archive"].options == {"outbox": "out"}
    assert cfg.config_file == path


def test_an_empty_file_means_the_embedded_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg.broker_url == "memory://"
    assert cfg.routes == [] and cfg.default_route is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("brokr_url: memory://\n", ["brokr_url", "unknown key"], id="unknown-top-level-key"),
        pytest.param("limits:\n  max_xml_byte: 5\n", ["limits.max_xml_byte", "unknown key"], id="unknown-nested-key"),
        pytest.param(
            DESTINATIONS + "routes:\n  - {name: r1, deliver_to: [seos], match: {knd: [x]}}\n",
            ["routes.0.match.knd", "unknown key"],
            id="unknown-match-key",
        ),
        pytest.param(
            DESTINATIONS + "routes:\n  - {name: r1, deliver_to: [nowhere]}\n",
            ["routes[0] 'r1'", "'nowhere'", "not under connections", "ais, archive, seos"],
            id="unknown-dest",
        ),
        pytest.param(
            DESTINATIONS + "routes:\n  - {name: r1, deliver_to: [seos], match: {sender_eik: ['000695236']}}\n",
            ["routes.0.match.sender_eik", "'000695236'", "wrong check digit"],
            id="bad-check-digit",
        ),
        pytest.param(
            DESTINATIONS + "routes:\n  - {name: r1, deliver_to: [seos], match: {recipient_eik: ['12345']}}\n",
            ["routes.0.match.recipient_eik", "'12345'", "9 or 13 digits"],
            id="short-eik",
        ),
        pytest.param(
            DESTINATIONS + "routes:\n  - {name: r1, deliver_to: [seos]}\n  - {name: r1, deliver_to: [archive]}\n",
            ["routes[1] 'r1'", "same name"],
            id="duplicate-route-name",
        ),
        pytest.param(
            DESTINATIONS + "routes:\n  - {name: r1, deliver_to: [seos, seos]}\n",
            ["routes.0.deliver_to", "twice"],
            id="destination-twice",
        ),
        pytest.param(
            DESTINATIONS + "routes:\n  - {name: r1, deliver_to: []}\n", ["routes.0.deliver_to"], id="no-destination"
        ),
        pytest.param(
            DESTINATIONS + "routes:\n  - {name: r1, deliver_to: [seos], match: {source: [other]}}\n",
            ["routes[0] 'r1'", "'other'", "not under connections"],
            id="unknown-source",
        ),
        pytest.param(
            DESTINATIONS + "default_route: {deliver_to: [nope]}\n",
            ["default_route", "'nope'"],
            id="default-route-unknown-dest",
        ),
        pytest.param("routes: [\n", ["not valid YAML"], id="invalid-yaml"),
        pytest.param("- data_dir\n", ["top level must be a mapping"], id="not-a-mapping"),
    ],
)
def test_errors_name_the_file_the_key_and_the_problem(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "kurier.yaml"
    with pytest.raises(ConfigError, match="no such configuration file") as err:
        load_config(missing)
    assert str(missing) in str(err.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kurier.yaml"
    path.write_bytes("node_name: Областна администрация\n".encode("cp1251"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_relative_data_dir_is_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where kurier happens to be started must not matter
    cfg = load_config(write(conf_dir, "data_dir: data\n"))
    assert cfg.data_dir == conf_dir.resolve() / "data"
    assert cfg.store_dir == conf_dir.resolve() / "data" / "store"
    assert cfg.resolved_journal_url == f"sqlite:///{conf_dir.resolve() / 'data' / 'journal.sqlite3'}"


def test_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "var" / "kurier"
    cfg = load_config(write(tmp_path, f"data_dir: {target}\n"))
    assert cfg.data_dir == target


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "broker_url: memory://\njournal_url: sqlite:///file.db\napi: {port: 8000}\n")
    assert load_config(path).broker_url == "memory://"
    monkeypatch.setenv("KURIER_BROKER_URL", "amqp://kurier:secret@mq:5672/kurier")
    monkeypatch.setenv("KURIER_JOURNAL_URL", "postgresql+psycopg://kurier@db/kurier")
    monkeypatch.setenv("KURIER_API__PORT", "9001")
    cfg = load_config(path)
    assert cfg.broker_url == "amqp://kurier:secret@mq:5672/kurier"
    assert cfg.journal_url == "postgresql+psycopg://kurier@db/kurier"
    assert cfg.resolved_journal_url == "postgresql+psycopg://kurier@db/kurier"
    assert cfg.api.port == 9001


def test_an_invalid_environment_value_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KURIER_QUEUE_PREFIX", "has spaces")
    with pytest.raises(ConfigError, match="queue_prefix"):
        load_config(write(tmp_path, ""))


def test_explicit_overrides_beat_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KURIER_DATA_DIR", str(tmp_path / "production"))
    cfg = load_config(None, data_dir=str(tmp_path / "bench"))
    assert cfg.data_dir == tmp_path / "bench"


def test_the_old_sources_and_destinations_layout_is_refused_with_its_replacement(tmp_path: Path) -> None:
    # Given a 0.1 configuration with an AIS as a source and as a destination
    path = write(tmp_path, """\
sources:
  ais: {adapter: filedrop, inbox: in/ais, encoding: windows-1251}
destinations:
  ais: {adapter: filedrop, outbox: out/ais, encoding: windows-1251}
  archive: {adapter: filedrop, outbox: out/archive}
default_route: {deliver_to: [archive]}
""")
    # When it is loaded, Then it is refused, naming the file and the connections that replace both sections
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "connections:" in message
    suggested = message.split("Replace them with:")[1].split("and keep the names")[0]
    import yaml

    migrated = yaml.safe_load(suggested)["connections"]
    assert migrated["ais"] == {"adapter": "filedrop", "inbox": "in/ais", "encoding": "windows-1251",
                               "outbox": "out/ais"}
    assert migrated["archive"] == {"adapter": "filedrop", "outbox": "out/archive"}
    # And the suggestion, pasted in, loads
    write(tmp_path, yaml.safe_dump({"connections": migrated, "default_route": {"deliver_to": ["archive"]}}))
    assert set(load_config(path).connections) == {"ais", "archive"}
