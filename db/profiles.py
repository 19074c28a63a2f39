"""Reference profiles, versioned per model; the highest version is the current one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.errors import translated
from db.models import ReferenceProfileRow
from drift.profile import ReferenceProfile


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    id: int
    model: str
    version: int
    source: str
    rows: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredProfile:
    info: ProfileInfo
    features: ReferenceProfile
    prediction: ReferenceProfile | None


def _info(row: ReferenceProfileRow) -> ProfileInfo:
    return ProfileInfo(row.id, row.model, row.version, row.source, row.rows, row.created_at)


@translated
class ProfileRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        model: str,
        features: ReferenceProfile,
        prediction: ReferenceProfile | None,
        source: str,
        now: datetime,
    ) -> ProfileInfo:
        """Store the next version of ``model``'s profile.

        Two concurrent builds for one model collide on the unique version and
        one of them fails with an IntegrityViolation naming
        ``uq_reference_profiles_version``; nothing is half-written.
        """
        latest = self.session.scalar(
            select(func.max(ReferenceProfileRow.version)).where(ReferenceProfileRow.model == model)
        )
        row = ReferenceProfileRow(
            model=model,
            version=(latest or 0) + 1,
            source=source[:1000],
            rows=features.rows,
            profile=features.to_bytes(),
            prediction=None if prediction is None else prediction.to_bytes(),
            created_at=now,
        )
        self.session.add(row)
        self.session.flush()
        return _info(row)

    def current_versions(self) -> dict[str, ProfileInfo]:
        """Each model's current profile, without loading the profiles themselves."""
        rp = ReferenceProfileRow
        newest = (
            select(rp.model, func.max(rp.version).label("version")).group_by(rp.model).subquery()
        )
        rows = self.session.execute(
            select(rp.id, rp.model, rp.version, rp.source, rp.rows, rp.created_at).join(
                newest, (rp.model == newest.c.model) & (rp.version == newest.c.version)
            )
        )
        return {r.model: ProfileInfo(*r) for r in rows}

    def current(self, model: str) -> StoredProfile | None:
        row = self.session.scalars(
            select(ReferenceProfileRow)
            .where(ReferenceProfileRow.model == model)
            .order_by(ReferenceProfileRow.version.desc())
            .limit(1)
        ).first()
        return None if row is None else _load(row)

    def by_id(self, profile_id: int) -> StoredProfile | None:
        row = self.session.get(ReferenceProfileRow, profile_id)
        return None if row is None else _load(row)

    def versions(self, model: str | None = None) -> list[ProfileInfo]:
        stmt = select(ReferenceProfileRow).order_by(
            ReferenceProfileRow.model, ReferenceProfileRow.version
        )
        if model is not None:
            stmt = stmt.where(ReferenceProfileRow.model == model)
        return [_info(r) for r in self.session.scalars(stmt)]


def _load(row: ReferenceProfileRow) -> StoredProfile:
    return StoredProfile(
        _info(row),
        ReferenceProfile.from_bytes(row.profile),
        None if row.prediction is None else ReferenceProfile.from_bytes(row.prediction),
    )
