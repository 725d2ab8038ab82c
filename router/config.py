"""Kurier's configuration: one YAML file, validated once at start-up, overridable from the environment.

Everything is optional: with no file at all Kurier runs on embedded defaults (SQLite journal, the
in-process queue transport, sample inbox/outbox folders under ``./kurier-data``). Unknown keys are
refused, and every error names the file, the key and what to do.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from adapters.seos.registry import RegistrySettings
from schemas.errors import ConfigError
from schemas.identifiers import normalize_guid, validate_eik
from schemas.limits import Limits as LimitsConfig
from signing import BUILT_IN, plan_signer

__all__ = [
    "AdapterConfig",
    "ApiConfig",
    "DeliveryConfig",
    "KurierConfig",
    "LimitsConfig",
    "MatchConfig",
    "ProcessingConfig",
    "RetryConfig",
    "RouteConfig",
    "SealConfig",
    "SignerConfig",
    "SigningConfig",
    "TransformConfig",
    "load_config",
]

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiConfig(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8470
    # Bearer token for /api and /metrics; when unset, `kurier run` makes one in <data_dir>/api-token.
    token: SecretStr | None = None


class RetryConfig(_Strict):
    """Delivery retries. Quick in-process tries first, then the journal schedules later tries."""

    in_process_attempts: int = Field(3, ge=1)
    max_attempts: int = Field(10, ge=1)  # like the SEOS reference sender: 10 tries...
    first_delay_seconds: float = Field(10.0, ge=0)
    max_delay_seconds: float = Field(600.0, ge=0)  # ...at most 10 minutes apart


class ProcessingConfig(_Strict):
    batch_size: int = Field(100, ge=1, le=5000)  # messages handled, journaled and acked together
    # How long a worker waits for a batch to fill. Under load the prefetched messages fill it at once;
    # at a light load waiting only adds latency, so the wait is short.
    batch_wait_ms: int = Field(3, ge=0)
    prefetch: int = Field(300, ge=1)
    sweep_interval_seconds: float = Field(5.0, gt=0)  # due retries and recovery
    # A non-terminal envelope untouched this long is re-queued from the journal (lost message or crash).
    recovery_grace_seconds: float = Field(120.0, ge=0)
    # Extra OS processes that run pipeline and delivery workers beside `kurier run` (RabbitMQ only:
    # the embedded transport lives inside one process). Python runs one core per process.
    worker_processes: int = Field(0, ge=0, le=64)


class DeliveryConfig(_Strict):
    """How Kurier delivers to one connection: its own workers and its own circuit breaker."""

    concurrency: int = Field(1, ge=1, le=32)  # deliveries in flight at once (a worker thread each)
    # Transient failures in a row after which the destination is left alone (the circuit opens)...
    failure_threshold: int = Field(5, ge=1)
    open_seconds: float = Field(30.0, gt=0)  # ...for this long, then one delivery probes it
    # This connection's own retry schedule, instead of the top-level ``retry``: a SEOS peer is retried
    # the reference's way (15 min, doubling, 10 retries), a local AIS in seconds.
    retry: RetryConfig | None = None


class AdapterConfig(BaseModel):
    """A connection: ``adapter`` names the kind, the other keys are the kind's own settings."""

    model_config = ConfigDict(extra="allow", frozen=True)
    adapter: str
    # Kurier's own settings for delivering to it, kept apart from the adapter's options.
    delivery: DeliveryConfig = DeliveryConfig()

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class MatchConfig(_Strict):
    """All given keys must match (AND); within a key, any listed value matches (OR)."""

    source: list[str] = []
    sender_eik: list[str] = []
    sender_guid: list[str] = []
    recipient_eik: list[str] = []
    recipient_guid: list[str] = []
    kind: list[str] = []
    procedure_code: list[str] = []

    @field_validator("sender_eik", "recipient_eik")
    @classmethod
    def _eiks(cls, values: list[str]) -> list[str]:
        return [validate_eik(v) for v in values]

    @field_validator("sender_guid", "recipient_guid")
    @classmethod
    def _guids(cls, values: list[str]) -> list[str]:
        return [normalize_guid(v) for v in values]

    @field_validator("kind")
    @classmethod
    def _kinds(cls, values: list[str]) -> list[str]:
        return [v.strip().casefold() for v in values]


class RouteConfig(_Strict):
    name: str
    match: MatchConfig = MatchConfig()
    deliver_to: list[str] = Field(min_length=1)

    @field_validator("deliver_to")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("deliver_to names a destination twice")
        return values


class TransformConfig(_Strict):
    """An XSLT applied to a document's XML files (e.g. an AIS's own format to a standard one)."""

    name: str
    match: MatchConfig = MatchConfig()
    xslt: Path
    xsd: Path | None = None  # the result must be valid against this schema
    files: str = "*.xml"  # which attachments, by file-name pattern


class DefaultRoute(_Strict):
    deliver_to: list[str] = Field(min_length=1)


class SignerConfig(BaseModel):
    """A signer: ``kind`` names it (``none``, ``testing``, ...), the other keys are the kind's own settings."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


VerifyPolicy = Literal["refuse", "flag", "off"]


class VerifyConfig(_Strict):
    """Checking the signatures of documents as they come in, per route (``signing.verify``).

    ``refuse``: a document with a signature that is not valid (or a file with none) fails with the reason,
    for an operator; ``flag``: it is delivered, each such file's comment saying what was found; ``off``:
    not checked. Every report is journaled with the document either way.
    """

    trust: list[Path] = []  # trust anchors (PEM or DER files); relative paths are in the data directory
    routes: dict[str, VerifyPolicy] = {}  # route name (``default`` for default_route) → policy
    default: VerifyPolicy = "off"
    files: str = "*"  # which attachments must carry a signature, by file-name pattern

    @model_validator(mode="after")
    def _anchors(self) -> VerifyConfig:
        if not self.trust and (self.default != "off" or any(p != "off" for p in self.routes.values())):
            raise ValueError("verify.trust: name the trust anchors the signatures are checked against")
        return self

    def policy(self, route: str) -> VerifyPolicy:
        return self.routes.get(route, self.default)


class SigningConfig(_Strict):
    """Which signer signs the documents of which route. Without it nothing is signed (``none``)."""

    signers: dict[str, SignerConfig] = {}
    verify: VerifyConfig = VerifyConfig()
    routes: dict[str, str] = {}  # route name (``default`` for default_route) → signer name
    default: str = "none"  # the signer of routes not listed; ``none`` is built in and signs nothing

    @model_validator(mode="after")
    def _signers(self) -> SigningConfig:
        for name, signer in self.signers.items():  # a kind's module is imported only when configured
            try:
                plan_signer(name, signer.kind, signer.options, where=f"signers.{name}")
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        known = sorted({*self.signers, *BUILT_IN})
        for where, name in [*((f"routes.{r}", s) for r, s in self.routes.items()), ("default", self.default)]:
            if name not in self.signers and name not in BUILT_IN:
                raise ValueError(f"{where}: names signer {name!r}, which is not under signing.signers "
                                 f"(known: {', '.join(known)})")
        return self


class SealConfig(_Strict):
    """The sealed journal: evidence rows hash-chained by the sealer, the chain's head timestamped by a TSA."""

    enabled: bool = True  # the hash chain; off only to measure what it costs
    interval_seconds: float = Field(2.0, gt=0)  # how often the sealer seals what was committed
    max_block_rows: int = Field(20000, ge=1, le=1_000_000)
    # An id seen missing (its transaction not yet committed) is waited for this long, then the gap is
    # closed: a row appearing there later was inserted into a sealed range. Far above any journal transaction.
    gap_seconds: float = Field(60.0, gt=0)
    # `kurier journal verify`: a row unsealed for longer than this is a finding (the sealer is not running).
    lag_seconds: float = Field(300.0, gt=0)
    tsa_url: str | None = None  # an RFC 3161 timestamp authority; none: the chain is not timestamped
    tsa_interval_seconds: float = Field(300.0, gt=0)
    tsa_timeout_seconds: float = Field(10.0, gt=0)
    tsa_trust: list[Path] = []  # the TSA's trust anchors (PEM or DER), for `kurier journal verify`

    @model_validator(mode="after")
    def _lag(self) -> SealConfig:
        if self.lag_seconds <= self.gap_seconds + self.interval_seconds:
            raise ValueError("lag_seconds must exceed gap_seconds + interval_seconds: a row may wait that long "
                             "for the sealer without anything being wrong")
        return self


_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("kurier_config_file_data", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The YAML file's values, as the lowest-priority settings source."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get() or {})


class SeosConfig(_Strict):
    """The national exchange as every SEOS connection shares it: the registry (domain.md §3)."""

    # The registry's copy is kept in <data_dir>/seos/ and refreshed by `kurier seos registry sync`.
    registry: RegistrySettings | None = None


class KurierConfig(BaseSettings):
    """The whole configuration. Environment variables ``KURIER_*`` override the file."""

    model_config = SettingsConfigDict(env_prefix="KURIER_", extra="forbid", frozen=True, env_nested_delimiter="__")

    data_dir: Path = Path("kurier-data")
    journal_url: str | None = None  # default: sqlite:///<data_dir>/journal.sqlite3
    broker_url: str = "memory://"  # the embedded transport; amqp://user:pass@host:5672/vhost for RabbitMQ
    queue_prefix: str = Field("kurier", pattern=r"^[A-Za-z0-9_.-]+$")
    node_name: str | None = None  # who this process is in journal events; default host:pid
    api: ApiConfig = ApiConfig()
    limits: LimitsConfig = LimitsConfig()
    retry: RetryConfig = RetryConfig()
    processing: ProcessingConfig = ProcessingConfig()
    # One outside system each (an AIS, a SEOS participant): a source, a destination, or both.
    connections: dict[str, AdapterConfig] = {}
    routes: list[RouteConfig] = []
    default_route: DefaultRoute | None = None
    transforms: list[TransformConfig] = []
    signing: SigningConfig = SigningConfig()
    seal: SealConfig = SealConfig()
    seos: SeosConfig = SeosConfig()
    config_file: Path | None = Field(None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments, then the environment, then the file: one file serves every stage of
        # deployment, and a caller that asks for something specific (the bench's scratch directory) gets it.
        return init_settings, env_settings, _FileSource(settings_cls)

    @model_validator(mode="after")
    def _references(self) -> KurierConfig:
        names = set(self.connections)
        seen: set[str] = set()
        for index, route in enumerate(self.routes):
            where = f"routes[{index}] {route.name!r}"
            if route.name in seen:
                raise ValueError(f"{where}: another route has the same name; names must be unique")
            seen.add(route.name)
            for dest in route.deliver_to:
                if dest not in names:
                    raise ValueError(f"{where}: deliver_to names {dest!r}, which is not under connections "
                                     f"(known: {', '.join(sorted(names)) or 'none'})")
            for src in route.match.source:
                if src not in self.connections:
                    raise ValueError(f"{where}: match.source names {src!r}, which is not under connections")
        if self.default_route:
            for dest in self.default_route.deliver_to:
                if dest not in names:
                    raise ValueError(f"default_route: deliver_to names {dest!r}, which is not under connections")
        route_names = {r.name for r in self.routes} | ({"default"} if self.default_route else set())
        named_routes = (("signing.routes", self.signing.routes), ("signing.verify.routes", self.signing.verify.routes))
        for where, named in named_routes:
            for signed in named:
                if signed not in route_names:
                    raise ValueError(f"{where} names route {signed!r}, which is not under routes (known: "
                                     f"{', '.join(sorted(route_names)) or 'none'}; `default` is default_route)")
        if self.processing.worker_processes and self.broker_url.startswith("memory"):
            raise ValueError("processing.worker_processes needs a broker shared between processes (RabbitMQ: "
                             "set broker_url); the embedded transport lives inside one process")
        for name in self.connections:
            if not name.replace("-", "").replace("_", "").isalnum() or len(name) > 64:
                raise ValueError(f"connection name {name!r}: use letters, digits, '-' and '_' only, at most 64")
        return self

    @property
    def resolved_journal_url(self) -> str:
        return self.journal_url or f"sqlite:///{(self.data_dir / 'journal.sqlite3').resolve()}"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    def resolve_path(self, value: str | Path) -> Path:
        """Relative paths in the file are relative to the data directory."""
        path = Path(value)
        return path if path.is_absolute() else self.data_dir / path


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: the configuration is not valid:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and indentation)"
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def _old_form(data: dict[str, Any], source: str) -> None:
    """Refuse the 0.1 layout (``sources:`` / ``destinations:``) with the ``connections:`` that replaces it."""
    if "sources" not in data and "destinations" not in data:
        return
    merged: dict[str, dict[str, Any]] = {}
    for section in ("sources", "destinations"):
        for name, settings in (data.get(section) or {}).items():
            entry = merged.setdefault(str(name), {})
            for key, value in (settings or {}).items():
                if key in entry and entry[key] != value:  # both halves set one key differently: keep them apart
                    entry = merged.setdefault(f"{name}-{section[:-1]}", {})
                    break
            entry.update(settings or {})
    suggestion = yaml.safe_dump({"connections": merged}, allow_unicode=True, sort_keys=False).rstrip()
    raise ConfigError(
        f"{source}: `sources:` and `destinations:` are now one section, `connections:` (an outside system is "
        "usually both; one connection serves both directions). Replace them with:\n\n"
        + "\n".join("  " + line for line in suggestion.splitlines())
        + "\n\nand keep the names in routes (match.source, deliver_to) as they are."
    )


def load_config(path: str | Path | None = None, **overrides: Any) -> KurierConfig:
    """Read and validate the configuration; raise :class:`ConfigError` naming the file, key and problem."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        file = Path(path)
        source = str(file)
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{file}: no such configuration file") from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid YAML (UTF-8): {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{file}: the top level must be a mapping of keys (data_dir, connections, routes, ...)")
        data = loaded or {}
        _old_form(data, source)
        base = file.resolve().parent
        # A relative data_dir in a file means relative to that file, not to wherever kurier was started.
        if "data_dir" in data and not Path(str(data["data_dir"])).is_absolute():
            data["data_dir"] = str(base / str(data["data_dir"]))
        data["config_file"] = file
    _old_form(overrides, "arguments")
    token = _FILE_DATA.set(data)
    try:
        return KurierConfig(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from exc
    finally:
        _FILE_DATA.reset(token)
