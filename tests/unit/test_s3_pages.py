"""pages(): follows the store's markers, stops when not truncated, refuses a listing that does not move."""

from __future__ import annotations

from typing import Any

import pytest
from modelpipe.errors import StorageError
from modelpipe.s3_pages import pages

FOLLOW = {"NextKeyMarker": "KeyMarker", "NextUploadIdMarker": "UploadIdMarker"}


class FakeListing:
    """Answers from a list of pages, recording the arguments of each call."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **arguments: Any) -> dict[str, Any]:
        self.calls.append(arguments)
        return self.answers[len(self.calls) - 1]


def test_follows_every_marker_until_the_answer_is_complete() -> None:
    listing = FakeListing(
        [
            {
                "Uploads": [1],
                "IsTruncated": True,
                "NextKeyMarker": "a",
                "NextUploadIdMarker": "u1",
            },
            # Same key, next upload id: still moving on.
            {
                "Uploads": [2],
                "IsTruncated": True,
                "NextKeyMarker": "a",
                "NextUploadIdMarker": "u2",
            },
            {"Uploads": [3], "IsTruncated": False},
        ]
    )
    uploads = [u for page in pages(listing, FOLLOW, Bucket="b", Prefix="p/") for u in page["Uploads"]]
    assert uploads == [1, 2, 3]
    assert listing.calls == [
        {"Bucket": "b", "Prefix": "p/"},
        {"Bucket": "b", "Prefix": "p/", "KeyMarker": "a", "UploadIdMarker": "u1"},
        {"Bucket": "b", "Prefix": "p/", "KeyMarker": "a", "UploadIdMarker": "u2"},
    ]


@pytest.mark.parametrize(
    "second",
    [
        {"IsTruncated": True},  # no marker at all
        {
            "IsTruncated": True,
            "NextKeyMarker": "a",
            "NextUploadIdMarker": "u1",
        },  # the same one again
    ],
)
def test_a_truncated_answer_that_does_not_move_on_is_an_error_not_a_loop(
    second: dict[str, Any],
) -> None:
    listing = FakeListing(
        [
            {"IsTruncated": True, "NextKeyMarker": "a", "NextUploadIdMarker": "u1"},
            second,
        ]
    )
    with pytest.raises(StorageError, match="truncated but does not say where the next page starts"):
        list(pages(listing, FOLLOW, Bucket="b"))
    assert len(listing.calls) == 2
