"""Configuration loading: YAML, DRIFTWATCH_* overrides and one-line problems."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from drift.schema import FeatureKind, PredictionKind
from service.config import Config, load_config
from service.config.settings import DatabaseConfig
from service.errors import ConfigError

BASE: dict[str, Any] = {
    "kafka": {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "group_id": "dw",
        "api_version": "2.8.1",
        "consumer": {"session_timeout_ms": 10000},
    },
    "database": {"url": "sqlite:///x.db"},
    "ingest": {"flush_events": 500, "flush_interval": "250ms"},
    "models": {
        "fraud": {
            "window": "5m",
            "allowed_lateness": "30s",
            "prediction": {"type": "numerical", "bins": [0.0, 0.5, 1.0]},
            "features": {
                "amount": {"type": "numerical", "bins": [0, 10, 100]},
                "country": {"type": "categorical", "nullable": True},
            },
        }
    },
}


def write(tmp_path: Path, raw: Any, name: str = "driftwatch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def load(tmp_path: Path, raw: Any = None, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, BASE if raw is None else raw), env or {})


def problems(tmp_path: Path, raw: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, raw, env)
    for line in info.value.problems:
        assert "\n" not in line
        assert line.startswith("config: ")
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def mutated(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return raw


# -- valid files ----------------------------------------------------------------


def test_valid_file_loads(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    assert cfg.kafka.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert cfg.kafka.group_id == "dw"
    assert cfg.kafka.api_version == (2, 8, 1)
    assert cfg.kafka.consumer == {"session_timeout_ms": 10000}
    assert cfg.kafka.topics.predictions == "predictions"
    assert cfg.database.url == "sqlite:///x.db"
    assert cfg.ingest.flush_events == 500
    assert cfg.ingest.flush_interval == 0.25
    assert cfg.ingest.max_clock_skew == 3600.0
    assert cfg.metrics.port == 9108
    assert cfg.log_level == "INFO"
    fraud = cfg.model_specs()["fraud"]
    assert fraud.window_seconds == 300
    assert fraud.allowed_lateness_seconds == 30
    assert fraud.prediction.kind is PredictionKind.NUMERICAL
    assert fraud.prediction.edges == (0.0, 0.5, 1.0)
    amount, country = fraud.features
    assert (amount.name, amount.kind, amount.nullable) == ("amount", FeatureKind.NUMERICAL, False)
    assert amount.edges == (0.0, 10.0, 100.0)
    assert (country.name, country.kind, country.nullable) == (
        "country",
        FeatureKind.CATEGORICAL,
        True,
    )


def test_shipped_example_config_loads() -> None:
    example = Path(__file__).parents[3] / "service" / "examples" / "demo.yaml"
    cfg = load_config(example, {})
    assert cfg.kafka.api_version == (0, 9)
    assert list(cfg.models) == ["fraud"]


def test_the_demo_config_writes_under_demo_and_its_commented_api_block_loads(
    tmp_path: Path,
) -> None:
    root = Path(__file__).parents[3]
    example = root / "service" / "examples" / "demo.yaml"
    cfg = load_config(example, {})
    # Every file the demo writes lies under a directory `make clean` removes.
    makefile = (root / "Makefile").read_text(encoding="utf-8").splitlines()
    recipe = makefile[makefile.index("clean:") + 1].split()
    assert recipe[:2] == ["rm", "-rf"]
    written = (
        cfg.archive.uri,
        cfg.database.url.removeprefix("sqlite:///"),
        str(cfg.retrain.workdir),
        str(cfg.retrain.artifacts_uri),
    )
    assert {Path(p).parts[0] for p in written} <= set(recipe[2:]) and "demo" in recipe, written
    # The commented `api:` block, uncommented, is a valid api section.
    lines = example.read_text(encoding="utf-8").splitlines()
    start = lines.index("# api:")
    block: list[str] = []
    for line in lines[start:]:
        if not line.startswith("# ") or line.startswith("#     #"):  # its end, or an example
            break
        block.append(line[2:])
    raw = yaml.safe_load(example.read_text(encoding="utf-8"))
    raw["api"] = yaml.safe_load("\n".join(block))["api"]
    api = load_config(write(tmp_path, raw), {}).api
    assert (api.port, [t.name for t in api.tokens]) == (8080, ["admin"])
    assert api.tokens[0].token_file == Path("demo/admin.token")
    assert api.session_secret_file == Path("demo/session.secret")


def test_comma_separated_servers(tmp_path: Path) -> None:
    cfg = load(tmp_path, mutated("kafka.bootstrap_servers", "a:1, b:2,"))
    assert cfg.kafka.bootstrap_servers == ["a:1", "b:2"]


def test_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    cfg = load_config(None, {"DRIFTWATCH_CONFIG": str(path)})
    assert cfg.kafka.group_id == "dw"


def test_no_path_at_all() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {})
    assert info.value.problems == ["config: no file given (use --config FILE or DRIFTWATCH_CONFIG)"]


# -- environment overrides ------------------------------------------------------


def test_env_overrides_nested_keys(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        env={
            "DRIFTWATCH_KAFKA__GROUP_ID": "from-env",
            "DRIFTWATCH_KAFKA__TOPICS__PREDICTIONS": "preds",
            "DRIFTWATCH_DATABASE__URL": "postgresql+psycopg://u:p@db/dw",
            "DRIFTWATCH_INGEST__FLUSH_EVENTS": "42",
            "DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS": "a:1,b:2",
            "DRIFTWATCH_CONFIG": "/ignored",
            "OTHER_KAFKA__GROUP_ID": "ignored",
        },
    )
    assert cfg.kafka.group_id == "from-env"
    assert cfg.kafka.topics.predictions == "preds"
    assert cfg.kafka.topics.labels == "labels"
    assert cfg.database.url == "postgresql+psycopg://u:p@db/dw"
    assert cfg.ingest.flush_events == 42
    assert cfg.kafka.bootstrap_servers == ["a:1", "b:2"]


def test_a_misspelt_section_in_a_variable_stops_loading_naming_the_nearest_key(
    tmp_path: Path,
) -> None:
    env = {"DRIFTWATCH_DATABSE__URL": "postgresql+psycopg://u:p@db/dw", "DRIFTWATCH_KAKFA__X": "1"}
    assert problems(tmp_path, BASE, env) == [
        "config: DRIFTWATCH_DATABSE__URL: 'databse' is not a configuration key; "
        "did you mean DRIFTWATCH_DATABASE__URL?",
        "config: DRIFTWATCH_KAKFA__X: 'kakfa' is not a configuration key; "
        "did you mean DRIFTWATCH_KAFKA__X?",
    ]


def test_a_variable_naming_no_key_at_all_lists_the_keys(tmp_path: Path) -> None:
    assert problems(tmp_path, BASE, {"DRIFTWATCH_UNKNOWN__X": "1"}) == [
        "config: DRIFTWATCH_UNKNOWN__X: 'unknown' is not a configuration key; expected one of "
        "alerts, api, archive, database, evaluation, ingest, kafka, late_labels, leader, "
        "log_level, log_levels, metrics, models, retention, retrain",
    ]


def test_variables_without_levels_are_not_configuration(tmp_path: Path) -> None:
    env = {"DRIFTWATCH_CONFIG": "/elsewhere", "DRIFTWATCH_CACHE_DIR": "/tmp", "DRIFTWATCH_X": "1"}
    assert load(tmp_path, env=env).database.url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db:5432/dw", "postgresql+psycopg://u:p@db:5432/dw"),
        ("postgres://u@db/dw", "postgresql+psycopg://u@db/dw"),
        ("postgresql+psycopg://u@db/dw", "postgresql+psycopg://u@db/dw"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgresql_urls_use_the_installed_psycopg_driver(
    tmp_path: Path, url: str, expected: str
) -> None:
    assert load(tmp_path, env={"DRIFTWATCH_DATABASE__URL": url}).database.url == expected


def test_a_postgresql_driver_that_is_not_installed_names_the_url_form(tmp_path: Path) -> None:
    env = {"DRIFTWATCH_DATABASE__URL": "postgresql+psycopg2://u:secret@db/dw"}
    assert problems(tmp_path, BASE, env) == [
        "config: database.url: driver psycopg2 is not the one installed; write "
        "postgresql+psycopg://user:password@host:5432/dbname (or postgresql://...)",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "DRIFTWATCH_MODELS__FRAUD__WINDOW",
        "DRIFTWATCH_MODELS__Fraud__WINDOW",
        "DRIFTWATCH_models__fraud__window",
    ],
)
def test_env_model_key_is_case_insensitive(tmp_path: Path, name: str) -> None:
    # Only the DRIFTWATCH_ prefix itself is case-sensitive.
    raw = copy.deepcopy(BASE)
    raw["models"] = {"Fraud": raw["models"]["fraud"]}
    cfg = load(tmp_path, raw, {name: "1m"})
    assert list(cfg.models) == ["Fraud"]
    assert cfg.models["Fraud"].window == 60.0


def test_env_can_add_a_nested_value_that_is_not_in_the_file(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        env={"DRIFTWATCH_MODELS__FRAUD__FEATURES__AMOUNT__NULLABLE": "true"},
    )
    assert cfg.models["fraud"].features["amount"].nullable is True


@pytest.mark.parametrize(
    ("value", "version"), [("0.9", (0, 9)), ("0.10", (0, 10)), ("2.8.1", (2, 8, 1)), ("3", (3,))]
)
def test_env_api_version_stays_text(tmp_path: Path, value: str, version: tuple) -> None:
    cfg = load(tmp_path, env={"DRIFTWATCH_KAFKA__API_VERSION": value})
    assert cfg.kafka.api_version == version


def test_env_numbers_are_coerced_for_consumer_options(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        env={
            "DRIFTWATCH_KAFKA__CONSUMER__SESSION_TIMEOUT_MS": "30000",
            "DRIFTWATCH_KAFKA__CONSUMER__CHECK_CRCS": "false",
            "DRIFTWATCH_KAFKA__PRODUCER__LINGER_MS": "5",
        },
    )
    assert cfg.kafka.consumer == {"session_timeout_ms": 30000, "check_crcs": False}
    assert type(cfg.kafka.consumer["session_timeout_ms"]) is int
    assert cfg.kafka.producer == {"linger_ms": 5}


def test_env_override_is_validated_like_the_file(tmp_path: Path) -> None:
    assert problems(tmp_path, BASE, {"DRIFTWATCH_MODELS__FRAUD__WINDOW": "soon"}) == [
        "config: models.fraud.window: expected a duration such as 30s, 5m or 1h"
    ]


@pytest.mark.parametrize("value", ["*s3cret", "[oops", "{x", "@home"])
def test_env_value_that_is_not_yaml_is_not_a_crash(tmp_path: Path, value: str) -> None:
    env = {"DRIFTWATCH_KAFKA__SECURITY__SASL_PLAIN_PASSWORD": value}
    try:
        cfg = load(tmp_path, env=env)
    except ConfigError as exc:
        assert any("kafka.security" in p for p in exc.problems)
    else:
        assert cfg.kafka.security == {"sasl_plain_password": value}


# -- invalid files: one problem per line, naming the dotted key ---------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            mutated("kafka.bootstrap_servers", delete=True),
            "config: kafka.bootstrap_servers: missing; expected a list of host:port strings",
        ),
        (mutated("kafka.bogus", 1), "config: kafka.bogus: unknown key"),
        (mutated("bogus", 1), "config: bogus: unknown key"),
        (
            mutated("models.fraud.window", "5 minutes"),
            "config: models.fraud.window: expected a duration such as 30s, 5m or 1h",
        ),
        (
            mutated("ingest.flush_interval", "-1s"),
            "config: ingest.flush_interval: expected a duration such as 30s, 5m or 1h",
        ),
        (
            mutated("models.fraud.allowed_lateness", True),
            "config: models.fraud.allowed_lateness: expected a duration such as 30s, 5m or 1h",
        ),
        (
            mutated("models.fraud.window", "1500ms"),
            "config: models.fraud.window: expected a whole number of seconds, at least 1s",
        ),
        (
            mutated("models.fraud.window", delete=True),
            "config: models.fraud.window: missing; expected a window length such as 5m or 1h",
        ),
        (
            mutated("models.fraud.features.amount.type", "text"),
            "config: models.fraud.features.amount.type: "
            "Input should be 'numerical' or 'categorical'",
        ),
        (
            mutated("kafka.consumer", {"bogus_ms": 1}),
            "config: kafka.consumer: unknown KafkaConsumer option(s) ['bogus_ms']",
        ),
        (
            mutated("kafka.producer", {"bogus_ms": 1}),
            "config: kafka.producer: unknown KafkaProducer option(s) ['bogus_ms']",
        ),
        (
            mutated("kafka.consumer", {"enable_auto_commit": True}),
            "config: kafka.consumer: ['enable_auto_commit'] are set by driftwatch itself "
            "and cannot be overridden",
        ),
        (
            mutated("kafka.consumer", {"group_id": "x", "bootstrap_servers": "y"}),
            "config: kafka.consumer: ['bootstrap_servers', 'group_id'] are set by driftwatch "
            "itself and cannot be overridden",
        ),
        (
            mutated("kafka.api_version", 0.9),
            "config: kafka.api_version: write the version as a quoted string, "
            "e.g. '0.9' or '0.10.2'",
        ),
        (
            mutated("kafka.api_version", "0.x"),
            "config: kafka.api_version: expected a version such as '0.9', got '0.x'",
        ),
        (
            mutated("kafka.bootstrap_servers", []),
            "config: kafka.bootstrap_servers: expected at least one host:port",
        ),
        (
            mutated("kafka.bootstrap_servers", ["k1"]),
            "config: kafka.bootstrap_servers: expected host:port, got 'k1'",
        ),
        (
            mutated("database.url", "mysql://x"),
            "config: database.url: expected a sqlite:///PATH or "
            "postgresql+psycopg://user:password@host:5432/dbname URL",
        ),
        (
            mutated("models", {}),
            "config: models: Dictionary should have at least 1 item after validation, not 0",
        ),
        (
            mutated("models", delete=True),
            "config: models: missing; expected a mapping of models",
        ),
    ],
)
def test_invalid_values_name_the_dotted_key(
    tmp_path: Path, raw: dict[str, Any], expected: str
) -> None:
    assert problems(tmp_path, raw) == [expected]


def test_unknown_nested_key_and_unknown_security_setting(tmp_path: Path) -> None:
    assert problems(tmp_path, mutated("models.fraud.features.amount.colour", "red")) == [
        "config: models.fraud.features.amount.colour: unknown key"
    ]
    (line,) = problems(tmp_path, mutated("kafka.security", {"password": "x"}))
    assert line.startswith("config: kafka.security: unknown setting(s) ['password']; expected")


@pytest.mark.parametrize("name", ["offset", "arrived_late"])
def test_a_feature_named_after_an_archive_column_stops_loading(tmp_path: Path, name: str) -> None:
    (line,) = problems(tmp_path, mutated(f"models.fraud.features.{name}", {"type": "numerical"}))
    assert line.startswith("config: models.fraud.features: ")
    assert f"feature name(s) ['{name}'] are reserved for the archive's columns" in line


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    raw = mutated("kafka.bootstrap_servers", delete=True)
    raw["models"]["fraud"]["window"] = "often"
    raw["kafka"]["consumer"] = {"enable_auto_commit": False}
    assert sorted(problems(tmp_path, raw)) == sorted(
        [
            "config: kafka.bootstrap_servers: missing; expected a list of host:port strings",
            "config: kafka.consumer: ['enable_auto_commit'] are set by driftwatch itself "
            "and cannot be overridden",
            "config: models.fraud.window: expected a duration such as 30s, 5m or 1h",
        ]
    )


@pytest.mark.parametrize(
    ("path", "bins"),
    [
        ("models.fraud.features.amount.bins", [10.0, 0.0]),
        ("models.fraud.features.amount.bins", [1.0, 1.0]),
        ("models.fraud.prediction.bins", [1.0, 0.5, 0.0]),
    ],
)
def test_bins_that_are_not_increasing_are_a_config_error(
    tmp_path: Path, path: str, bins: list[float]
) -> None:
    try:
        cfg = load(tmp_path, mutated(path, bins))
    except ConfigError as exc:
        (line,) = exc.problems
        assert line.startswith(f"config: {path}: ")
    else:
        cfg.model_specs()  # what `driftwatch run` does next
        pytest.fail("bins that are not increasing were accepted")


# -- unreadable files -----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == [f"config: cannot read {path}: No such file or directory"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, {})
    assert info.value.problems == [f"config: cannot read {tmp_path}: Is a directory"]


def yaml_problem_of(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    (line,) = info.value.problems
    return line


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    line = yaml_problem_of(path, "kafka: [\n  bootstrap_servers: x\n")
    assert line.startswith(f"config: {path} is not valid YAML: ")
    assert "\n" not in line


def test_a_yaml_error_names_its_place_and_never_quotes_the_line(tmp_path: Path) -> None:
    # The line a parser stops at may carry a secret (an alert channel's key).
    path = tmp_path / "bad.yaml"
    line = yaml_problem_of(path, "alerts:\n  routing_key: R0UTINGKEY123: x\n")
    assert "R0UTINGKEY123" not in line
    assert line == (
        f"config: {path} is not valid YAML: "
        "mapping values are not allowed here at line 2, column 29"
    )


def test_the_logged_database_url_hides_every_password() -> None:
    for url in (
        "postgresql+psycopg://dw:S3cret@db/dw",
        "postgresql+psycopg://dw@db/dw?password=S3cret&sslmode=require",
        "postgresql+psycopg://dw@db/dw?sslpassword=S3cret",
    ):
        cfg = DatabaseConfig(url=url)
        assert "S3cret" not in cfg.masked_url and "S3cret" not in repr(cfg)
        assert cfg.masked_url.startswith("postgresql+psycopg://dw")
    assert (
        "sslmode=require" in DatabaseConfig(url="postgresql://dw@db/dw?sslmode=require").masked_url
    )


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, [1, 2])
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == [f"config: {path} must hold a mapping at the top level"]


def test_empty_file_reports_the_required_sections(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == [
        "config: kafka: missing",
        "config: models: missing; expected a mapping of models",
    ]


def test_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    text = yaml.safe_dump(mutated("kafka.group_id", "équipe"), allow_unicode=True)
    assert "équipe" in text
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    (line,) = info.value.problems
    assert line == f"config: {path} is not UTF-8 text"


# -- labels ---------------------------------------------------------------------


def test_labels_are_opt_in_a_labels_section_joins_them(tmp_path: Path) -> None:
    # Most production models never get labels: without a labels section a model is
    # watched for data drift only, and no labels topic is needed.
    assert load(tmp_path).label_specs() == {}
    assert load(tmp_path).detector_specs() == {}


def test_labels_section_joins_with_the_task_from_the_prediction_type(tmp_path: Path) -> None:
    spec = load(tmp_path, mutated("models.fraud.labels", {})).label_specs()["fraud"]
    assert (spec.task, spec.join_ttl, spec.positive_label) == ("regression", 3600.0, "1")
    raw = mutated("models.fraud.labels", {"task": "classification", "positive_label": 1})
    spec = load(tmp_path, raw).label_specs()["fraud"]
    assert (spec.task, spec.positive_label) == ("classification", "1")
    assert load(tmp_path, mutated("models.fraud.labels", {"enabled": False})).label_specs() == {}


@pytest.mark.parametrize(
    ("labels", "prediction", "expected"),
    [
        (
            {"task": "regression"},
            {"type": "categorical"},
            "config: models.fraud: labels.task: regression needs prediction.type numerical",
        ),
        (
            {"reference": {"accuracy": 0.9}},
            None,
            "config: models.fraud: labels.reference: a regression model is judged on mse",
        ),
        (
            {"reference": {"accuracy": 0.9, "mse": 1.0}},
            None,
            "config: models.fraud.labels.reference: give exactly one of accuracy "
            "(classification) or mse (regression)",
        ),
        ({"join_ttl": "soon"}, None, "config: models.fraud.labels.join_ttl: expected a duration"),
    ],
)
def test_bad_labels_settings_name_the_key(
    tmp_path: Path, labels: dict[str, Any], prediction: Any, expected: str
) -> None:
    raw = mutated("models.fraud.labels", labels)
    if prediction is not None:
        raw["models"]["fraud"]["prediction"] = prediction
    [line] = problems(tmp_path, raw)
    assert line.startswith(expected)


def test_detectors_default_to_the_alarm_rule_where_a_loss_is_defined(tmp_path: Path) -> None:
    # A regression without a reference has no loss scale: no detectors by default.
    assert load(tmp_path).detector_specs() == {}
    raw = mutated("models.fraud.labels", {"reference": {"mse": 4.0}})
    spec = load(tmp_path, raw).detector_specs()["fraud"]
    assert (spec.task, spec.detectors, spec.scale, spec.loss) == (
        "regression",
        ("rule",),
        6.0,
        "abs/6.0",
    )
    raw = mutated("models.fraud.labels", {"task": "classification", "detectors": ["ddm", "rule"]})
    spec = load(tmp_path, raw).detector_specs()["fraud"]
    assert (spec.task, spec.detectors, spec.scale) == ("classification", ("ddm", "rule"), None)
    raw = mutated("models.fraud.labels", {"task": "classification", "detectors": []})
    assert load(tmp_path, raw).detector_specs() == {}
    raw = mutated("models.fraud.labels", {"task": "classification", "enabled": False})
    assert load(tmp_path, raw).detector_specs() == {}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {"task": "classification", "detectors": ["rule", "cusum"]},
            "config: models.fraud.labels.detectors: unknown detector(s) ['cusum']; expected "
            "some of ['rule', 'adwin', 'ddm', 'eddm', 'page_hinkley']",
        ),
        (
            {"task": "classification", "detectors": ["rule", "rule"]},
            "config: models.fraud.labels.detectors: a detector is listed twice",
        ),
        (
            {"detectors": ["rule"]},
            "config: models.fraud: labels.detectors: a regression's detectors need "
            "labels.reference.mse",
        ),
        (
            {"detectors": ["eddm", "rule"], "reference": {"mse": 1.0}},
            "config: models.fraud: labels.detectors: eddm take 0/1 errors",
        ),
    ],
)
def test_bad_detectors_name_the_key(tmp_path: Path, labels: dict[str, Any], expected: str) -> None:
    [line] = problems(tmp_path, mutated("models.fraud.labels", labels))
    assert line.startswith(expected)


def test_the_assignment_strategy_is_driftwatchs_own(tmp_path: Path) -> None:
    raw = mutated("kafka.consumer", {"partition_assignment_strategy": []})
    [line] = problems(tmp_path, raw)
    assert "partition_assignment_strategy" in line and "cannot be overridden" in line


def test_start_up_checks_that_both_topics_have_one_partition_count() -> None:
    from service.errors import ServiceError
    from service.kafka_clients import check_copartitioned

    class Topics:
        def __init__(self, **parts: int) -> None:
            self.parts = parts

        def partitions_for_topic(self, topic: str) -> set[int]:
            return set(range(self.parts.get(topic, 0)))

    check_copartitioned(Topics(p=3, l=3), "p", "l")
    with pytest.raises(ServiceError, match="'p' has 3 partitions and 'l' has 2"):
        check_copartitioned(Topics(p=3, l=2), "p", "l")
    with pytest.raises(ServiceError, match=r"kafka\.topics\.labels: topic 'l' does not exist"):
        check_copartitioned(Topics(p=3), "p", "l")


def test_stream_caps_have_defaults_and_reach_the_ingest_settings(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    assert (
        cfg.ingest.max_versions,
        cfg.ingest.max_categories,
        cfg.ingest.max_category_length,
    ) == (20, 1000, 256)
    assert cfg.ingest.hold_backlog == 1000
    caps = load(tmp_path, mutated("ingest.max_versions", 3)).ingest.caps()
    assert caps.max_versions == 3
    assert (caps.categories.max_values, caps.categories.max_length) == (1000, 256)


@pytest.mark.parametrize(
    "key", ["max_versions", "max_categories", "max_category_length", "hold_backlog"]
)
@pytest.mark.parametrize("value", [0, "many"])
def test_a_stream_cap_that_is_not_a_positive_number_names_its_key(
    tmp_path: Path, key: str, value: Any
) -> None:
    (line,) = problems(tmp_path, mutated(f"ingest.{key}", value))
    assert line.startswith(f"config: ingest.{key}: ")


def test_log_levels_name_loggers_and_levels(tmp_path: Path) -> None:
    cfg = load(tmp_path, env={"DRIFTWATCH_LOG_LEVELS__KAFKA": "INFO"})
    assert cfg.log_levels == {"kafka": "INFO"}
    [bad_name] = problems(tmp_path, {**BASE, "log_levels": {"kafka coordinator": "INFO"}})
    assert bad_name.startswith("config: log_levels:") and "'kafka coordinator'" in bad_name
    [bad_level] = problems(tmp_path, {**BASE, "log_levels": {"kafka": "LOUD"}})
    assert bad_level.startswith("config: log_levels.kafka:") and "'DEBUG'" in bad_level
