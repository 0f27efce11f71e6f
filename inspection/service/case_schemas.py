"""JSON shape of a return as one case (GET /v1/returns/{return_id})."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from inspection.service.schemas import CaseCheckPublic, InspectionPublic, ReviewPublic, Source


class CaseInspectionPublic(InspectionPublic):
    reviews: list[ReviewPublic] = Field(description="every review, oldest first (overrides too)")


class ReturnComparisonPublic(BaseModel):
    inspection_id: str | None = Field(description="the inspection whose arrival made the comparison")
    status: Literal["compared", "not_compared"]
    reason: str = Field(description="why there is no comparison (one-sided, purged photos)")
    checks: list[CaseCheckPublic]


class CaseEventPublic(BaseModel):
    at: datetime
    kind: Literal["inspection", "review"]
    source: Source
    inspection_id: str
    summary: str


class ReturnCasePublic(BaseModel):
    return_id: str
    sources: dict[str, int] = Field(description="inspections per source")
    comparison: ReturnComparisonPublic
    events: list[CaseEventPublic] = Field(description="the timeline, oldest first")
    inspections: list[CaseInspectionPublic] = Field(description="oldest first")
