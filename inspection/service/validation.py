"""What text the API accepts, in one place, with the same limits as the columns that store it.

Nothing reaches the database that it would refuse: PostgreSQL rejects a NUL byte in any text
column and a lone UTF-16 surrogate cannot be encoded, both of which used to surface as 500s.
Ids, filters and names are one line of printable text; a note may also hold line breaks and
tabs. The limits are Annotated types, so OpenAPI documents them and FastAPI answers a
violation with the usual 422 naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Form, Header, Path, Query

from inspection.decide import Policy
from inspection.service.errors import Unprocessable

# Column sizes (models.py): the API refuses what the database could not store.
RETURN_ID_MAX = 200
SKU_MAX = 200
CATEGORY_MAX = 100
FILENAME_MAX = 300
DISPOSITION_MAX = 50
FLAG_KIND_MAX = 50
NOTE_MAX = 2000
LABEL_MAX = 100
IDEMPOTENCY_KEY_MAX = 200
MAX_OFFSET = 1_000_000_000  # far beyond any queue; far below the 64-bit overflow that was a 500
CURSOR_MAX = 200
MAX_PHOTOS_DOCUMENTED = 8  # Settings.max_photos' default; the route checks the configured value

# One line of printable text: no C0/C1 control characters, no DEL, no lone surrogates.
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
NOTE_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
LINE_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
INSPECTION_ID_PATTERN = r"^[0-9a-f]{32}$"  # uuid4().hex, as POST makes them
CURSOR_PATTERN = r"^[A-Za-z0-9_=-]*$"  # url-safe base64

# Any other string is 404 "no inspection" (crud.get_inspection_for), never sent to the database.
InspectionId = Annotated[str, Path(description="the `id` POST /v1/inspections answered "
                                               "(32 hex digits)")]
ReturnIdForm = Annotated[str, Form(min_length=1, max_length=RETURN_ID_MAX, pattern=LINE_PATTERN)]
SkuForm = Annotated[str | None, Form(max_length=SKU_MAX, pattern=LINE_PATTERN)]
CategoryForm = Annotated[str | None, Form(max_length=CATEGORY_MAX, pattern=LINE_PATTERN,
                                          description="product category")]
IdempotencyKeyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX, pattern=LINE_PATTERN,
    description="retry safely: the same key and request give the first answer again")]
SkuQuery = Annotated[str | None, Query(max_length=SKU_MAX, pattern=LINE_PATTERN)]
FlagQuery = Annotated[str | None, Query(max_length=FLAG_KIND_MAX, pattern=LINE_PATTERN,
                                        description="only items with this flag kind")]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
CursorQuery = Annotated[str | None, Query(max_length=CURSOR_MAX, pattern=CURSOR_PATTERN,
                                          description="`next_cursor` of the previous page")]


def check_line(value: str | None, field: str, max_length: int) -> None:
    """For text that arrives outside pydantic (filenames, UI forms): same rule as LINE_PATTERN."""
    if value is None:
        return
    if len(value) > max_length:
        raise Unprocessable(f"{field} is {len(value)} characters; at most {max_length}", field)
    if LINE_FORBIDDEN.search(value):
        raise Unprocessable(f"{field} contains control characters", field)


def check_note(value: str | None, field: str = "note") -> None:
    if value is not None and NOTE_FORBIDDEN.search(value):
        raise Unprocessable(f"{field} contains control characters (line breaks and tabs are fine)",
                            field)


def allowed_dispositions(policy: Policy, recommended: str | None = None) -> list[str]:
    """What a reviewer may choose: every disposition the policy's rules can give, in rule
    order, plus the one the model recommended."""
    names = [rule.disposition for rule in policy.rules] + [policy.default.disposition]
    if recommended:
        names.append(recommended)
    return list(dict.fromkeys(names))


def check_disposition(value: str | None, policy: Policy, recommended: str | None) -> None:
    allowed = allowed_dispositions(policy, recommended)
    if value is not None and value not in allowed:
        raise Unprocessable(f"unknown disposition {value[:DISPOSITION_MAX]!r}; one of {allowed}",
                            "disposition")
