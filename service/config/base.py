"""What every configuration section shares: strictness and the duration type."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from service.durations import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    """A section that refuses unknown keys and is read-only once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
