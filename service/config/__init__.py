"""Configuration: one YAML file, overridable by ``DRIFTWATCH_*`` variables, validated.

``DRIFTWATCH_KAFKA__GROUP_ID=x`` overrides ``kafka.group_id``; ``__`` separates
levels and keys match case-insensitively, so ``DRIFTWATCH_MODELS__FRAUD__WINDOW``
reaches ``models.fraud.window``. Only variables with ``__`` are read, so
``DRIFTWATCH_CONFIG`` and friends never collide; one whose first level is no
top-level key is a typo and stops loading, naming the nearest key.

One module per section (:mod:`.kafka`, :mod:`.models`, :mod:`.settings` for the
rest) and :mod:`.loading` for the file and the environment.
"""

from service.config.kafka import KafkaConfig, Topics
from service.config.loading import ENV_PREFIX, apply_env_overrides, load_config
from service.config.models import (
    DriftConfig,
    FeatureConfig,
    LabelsConfig,
    ModelConfig,
    PredictionConfig,
    ReferencePerformance,
)
from service.config.settings import (
    Config,
    DatabaseConfig,
    EvaluationConfig,
    IngestConfig,
    MetricsConfig,
)

__all__ = [
    "ENV_PREFIX",
    "Config",
    "DatabaseConfig",
    "DriftConfig",
    "EvaluationConfig",
    "FeatureConfig",
    "IngestConfig",
    "KafkaConfig",
    "LabelsConfig",
    "MetricsConfig",
    "ModelConfig",
    "PredictionConfig",
    "ReferencePerformance",
    "Topics",
    "apply_env_overrides",
    "load_config",
]
