"""The review queue and the operator's decision: oldest first, filters, paging, one review per
item (409 on a second, unless an admin overrides), labels checked against the taxonomy."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import error_of, headers, submit


@pytest.fixture
def queued(client: Any, photo_jpeg: bytes) -> list[str]:
    """Three flagged items: two from station A (sku S1, S2), one from the customer portal."""
    ids = [submit(client, [photo_jpeg], sku="S1").json()["id"],
           submit(client, [photo_jpeg], sku="S2").json()["id"],
           submit(client, [photo_jpeg], role="customer", sku="S1").json()["id"]]
    return ids


def queue(client: Any, role: str = "operator", **params: Any) -> Any:
    return client.get("/v1/review-queue", headers=headers(role), params=params)


def test_queue_lists_flagged_items_oldest_first(client: Any, queued: list[str]) -> None:
    page = queue(client).json()
    assert [item["id"] for item in page["items"]] == queued and page["total"] == 3
    first = page["items"][0]
    assert {f["kind"] for f in first["flags"]} == {"damage_found", "accessory_missing"}
    assert first["photo_count"] == 1 and first["refund"] == "hold_for_review"


def test_queue_filters(client: Any, queued: list[str]) -> None:
    assert [i["id"] for i in queue(client, source="customer").json()["items"]] == queued[2:]
    assert [i["id"] for i in queue(client, sku="S1").json()["items"]] == [queued[0], queued[2]]
    assert queue(client, flag="damage_found").json()["total"] == 3
    assert queue(client, flag="item_mismatch").json()["total"] == 0


def test_queue_pages_by_offset_and_cursor(client: Any, queued: list[str]) -> None:
    first = queue(client, limit=2).json()
    assert [i["id"] for i in first["items"]] == queued[:2] and first["total"] == 3
    by_offset = queue(client, limit=2, offset=2).json()
    assert [i["id"] for i in by_offset["items"]] == queued[2:]
    by_cursor = queue(client, limit=2, cursor=first["next_cursor"]).json()
    assert [i["id"] for i in by_cursor["items"]] == queued[2:] and by_cursor["next_cursor"] is None
    bad = queue(client, cursor="garbage!")
    assert bad.status_code == 422 and error_of(bad)["field"] == "cursor"
    assert queue(client, limit=0).status_code == 422


def test_clean_items_never_reach_the_queue(make_app: Any, clean_bundle: Any,
                                           photo_jpeg: bytes) -> None:
    client = make_app(clean_bundle)
    submit(client, [photo_jpeg])
    assert queue(client).json()["total"] == 0


@pytest.mark.parametrize(("role", "status"), [("station", 403), ("customer", 403),
                                              ("operator", 200), ("admin", 200)])
def test_only_operators_and_admins_work_the_queue(client: Any, role: str, status: int) -> None:
    assert queue(client, role).status_code == status


def review(client: Any, inspection: str, role: str = "operator", **body: Any) -> Any:
    return client.post(f"/v1/inspections/{inspection}/review", headers=headers(role),
                       json={"decision": "confirm", **body})


def test_review_leaves_the_queue_and_a_second_review_is_409(client: Any,
                                                             queued: list[str]) -> None:
    done = review(client, queued[0], decision="correct", note="just scuffed",
                  labels={"condition": ["C"], "damage": ["scratch"]}, disposition="refurbish")
    assert done.status_code == 201
    body = done.json()
    assert body["status"] == "reviewed" and body["review"]["reviewer"] == "olga"
    assert body["review"]["labels"] == {"condition": ["C"], "damage": ["scratch"]}
    assert queue(client).json()["total"] == 2
    again = review(client, queued[0])
    assert again.status_code == 409 and error_of(again)["code"] == "already_reviewed"
    # an operator may not override; an admin may
    assert review(client, queued[0], override=True).status_code == 403
    overridden = review(client, queued[0], role="admin", override=True)
    assert overridden.status_code == 201
    assert overridden.json()["review"]["override"] is True
    assert overridden.json()["review"]["decision"] == "confirm"


@pytest.mark.parametrize(("labels", "field"), [
    ({"colour": ["red"]}, "labels.colour"),              # not a head
    ({"damage": ["melted"]}, "labels.damage"),           # not a damage label
    ({"condition": ["A", "B"]}, "labels.condition"),     # single-label head, two labels
])
def test_corrected_labels_are_checked(client: Any, queued: list[str], labels: dict[str, Any],
                                      field: str) -> None:
    response = review(client, queued[0], decision="correct", labels=labels)
    assert response.status_code == 422 and error_of(response)["field"] == field


def test_review_input_errors_and_roles(client: Any, queued: list[str]) -> None:
    bad = review(client, queued[0], decision="maybe")
    assert bad.status_code == 422 and error_of(bad)["field"] == "decision"
    assert review(client, "no-such-id").status_code == 404
    assert review(client, queued[0], role="station").status_code == 403
