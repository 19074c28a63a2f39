"""The ``kafka`` section: brokers, topics, security and client options."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from service.config.base import Duration, Strict

_SECURITY_KEYS = frozenset(
    {
        "security_protocol",
        "ssl_context",
        "ssl_check_hostname",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_crlfile",
        "ssl_ciphers",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)
# Settings the service owns itself; letting users override them would break exactly-once.
_RESERVED_CONSUMER_KEYS = frozenset(
    {
        "bootstrap_servers",
        "group_id",
        "enable_auto_commit",
        "api_version",
        "auto_offset_reset",
        "partition_assignment_strategy",
    }
)


class Topics(Strict):
    predictions: str = "predictions"
    labels: str = "labels"
    dead_letter: str = "driftwatch-dead-letter"


class KafkaConfig(Strict):
    bootstrap_servers: list[str] = Field(description="a list of host:port strings")
    group_id: str = "driftwatch"
    api_version: tuple[int, ...] | None = Field(
        default=None, description="a broker version such as '0.9' or '2.8.1'; unset = probe"
    )
    topics: Topics = Topics()
    startup_timeout: Duration = Field(
        default=60.0, description="how long start-up waits for the brokers, e.g. 60s"
    )
    security: dict[str, Any] = {}
    consumer: dict[str, Any] = {}
    producer: dict[str, Any] = {}

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if isinstance(v, list) and not v:
            raise ValueError("expected at least one host:port")
        if isinstance(v, list):
            for s in v:
                if not isinstance(s, str) or ":" not in s:
                    raise ValueError(f"expected host:port, got {s!r}")
        return v

    @field_validator("api_version", mode="before")
    @classmethod
    def _parse_version(cls, v: Any) -> Any:
        if v is None or isinstance(v, list | tuple):
            return v
        if v == "":
            return None  # lets DRIFTWATCH_KAFKA__API_VERSION= restore probing
        if isinstance(v, float):
            raise ValueError("write the version as a quoted string, e.g. '0.9' or '0.10.2'")
        text = str(v).strip()
        try:
            return tuple(int(part) for part in text.split("."))
        except ValueError:
            raise ValueError(f"expected a version such as '0.9', got {text!r}") from None

    @field_validator("security")
    @classmethod
    def _known_security(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - _SECURITY_KEYS)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {unknown}; expected some of {sorted(_SECURITY_KEYS)}"
            )
        return v

    @field_validator("consumer")
    @classmethod
    def _known_consumer(cls, v: dict[str, Any]) -> dict[str, Any]:
        from kafka import KafkaConsumer

        return _check_client_options(v, set(KafkaConsumer.DEFAULT_CONFIG), "KafkaConsumer")

    @field_validator("producer")
    @classmethod
    def _known_producer(cls, v: dict[str, Any]) -> dict[str, Any]:
        from kafka import KafkaProducer

        return _check_client_options(v, set(KafkaProducer.DEFAULT_CONFIG), "KafkaProducer")


def _check_client_options(v: dict[str, Any], known: set[str], client: str) -> dict[str, Any]:
    reserved = sorted(set(v) & _RESERVED_CONSUMER_KEYS)
    if reserved:
        raise ValueError(f"{reserved} are set by driftwatch itself and cannot be overridden")
    unknown = sorted(set(v) - known)
    if unknown:
        raise ValueError(f"unknown {client} option(s) {unknown}")
    return v
