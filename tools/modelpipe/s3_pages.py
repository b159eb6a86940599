"""Paging through S3 listings with direct calls.

botocore's paginators load their model from disk on first use in a process: about 7 ms of CPU each here,
three times the request itself. A no-change upload re-run is two round trips and a wave of requests; two
paginators in it were a tenth of its time on a 50 ms link.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from modelpipe.errors import StorageError

# Response field -> request argument that continues each listing (checked against a real store in tests).
OBJECTS = {"NextContinuationToken": "ContinuationToken"}
UPLOADS = {"NextKeyMarker": "KeyMarker", "NextUploadIdMarker": "UploadIdMarker"}
PARTS = {"NextPartNumberMarker": "PartNumberMarker"}


def pages(
    call: Callable[..., Mapping[str, Any]], follow: Mapping[str, str], **arguments: Any
) -> Iterator[Mapping[str, Any]]:
    """Each page of ``call(**arguments)`` while the answer says it is truncated.

    Args:
        call: A client method, e.g. ``client.list_objects_v2``.
        follow: Response field -> request argument for the next page, e.g.
            ``{"NextContinuationToken": "ContinuationToken"}``.
        arguments: The first request's arguments.

    Raises:
        StorageError: The store said truncated without a marker that moves on (it would loop forever).
    """
    while True:
        page = call(**arguments)
        yield page
        if not page.get("IsTruncated"):
            return
        following = {argument: page.get(field) for field, argument in follow.items()}
        if not any(following.values()) or all(arguments.get(k) == v for k, v in following.items()):
            raise StorageError(
                f"the store's {getattr(call, '__name__', 'listing')} answer is truncated but does not say "
                f"where the next page starts ({', '.join(follow)})",
                fix="check the S3 endpoint is an S3-compatible store",
            )
        arguments = {**arguments, **{k: v for k, v in following.items() if v}}
