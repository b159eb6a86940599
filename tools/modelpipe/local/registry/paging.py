"""List options of the registry API: page size, ordering and the keyset ``nextPageToken`` cursor."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from modelpipe.local.registry.errors import BadRequestError

DEFAULT_PAGE_SIZE = 20  # MLMD's default max_result_size, which the real server inherits
MAX_INT32 = 2**31 - 1
ORDER_COLUMNS = {"ID": "id", "CREATE_TIME": "create_time", "LAST_UPDATE_TIME": "update_time"}
_POSITIVE_INT = re.compile(r"^[1-9][0-9]{0,9}$")


@dataclass(frozen=True)
class PageRequest:
    """One list call: ``after`` is the decoded cursor (order value, id) or None for the first page."""

    size: int = DEFAULT_PAGE_SIZE
    order_by: str = "ID"
    descending: bool = False
    after: tuple[int, int] | None = None

    @property
    def column(self) -> str:
        return ORDER_COLUMNS[self.order_by]


def parse_page_request(params: Mapping[str, str]) -> PageRequest:
    """Read ``pageSize``, ``orderBy``, ``sortOrder`` and ``nextPageToken`` from query parameters.

    An empty or absent ``nextPageToken`` means the first page (the client's pager relies on it).

    Raises:
        BadRequestError: A value is malformed, out of range or names an unknown field or order.
    """
    size = DEFAULT_PAGE_SIZE
    raw_size = params.get("pageSize")
    if raw_size is not None:
        if not _POSITIVE_INT.match(raw_size) or int(raw_size) > MAX_INT32:
            raise BadRequestError(f"pageSize must be a positive int32, got {raw_size!r}")
        size = int(raw_size)
    order_by = params.get("orderBy") or "ID"
    if order_by not in ORDER_COLUMNS:
        raise BadRequestError(f"orderBy must be one of {', '.join(ORDER_COLUMNS)}, got {order_by!r}")
    sort_order = params.get("sortOrder") or "ASC"
    if sort_order not in ("ASC", "DESC"):
        raise BadRequestError(f"sortOrder must be ASC or DESC, got {sort_order!r}")
    token = params.get("nextPageToken") or ""
    after = decode_token(token, order_by) if token else None
    return PageRequest(size=size, order_by=order_by, descending=sort_order == "DESC", after=after)


def _is_int64(value: object) -> bool:
    # SQLite integers are 64-bit: a larger cursor value could not even be compared (OverflowError).
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def encode_token(order_by: str, value: int, entity_id: int) -> str:
    """An opaque cursor pointing just past the row (value, id) in ``order_by`` order."""
    raw = json.dumps([order_by, value, entity_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, order_by: str) -> tuple[int, int]:
    """The (order value, id) a cursor points past.

    Raises:
        BadRequestError: The token is not one this server issued, or was issued for another orderBy.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        field, value, entity_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError) as err:
        raise BadRequestError(f"invalid nextPageToken {token[:64]!r}") from err
    if not (_is_int64(value) and _is_int64(entity_id) and isinstance(field, str)):
        raise BadRequestError(f"invalid nextPageToken {token[:64]!r}")
    if field != order_by:
        raise BadRequestError(f"nextPageToken was issued for orderBy={field}, not orderBy={order_by}")
    return value, entity_id
