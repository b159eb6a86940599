"""Lists: page size, keyset nextPageToken, empty token = first page, orderBy and sortOrder."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.local.registry.conftest import Api


def _names(page: dict[str, Any]) -> list[str]:
    return [item["name"] for item in page["items"]]


def _walk(api: Api, path: str, **params: Any) -> list[list[str]]:
    pages, token = [], ""
    while True:
        page = api.get(path, nextPageToken=token, **params).json()
        pages.append(_names(page))
        token = page["nextPageToken"]
        if not token:
            return pages


def test_list_body_has_items_token_page_size_and_size(api: Api) -> None:
    api.model("a")
    page = api.get("/registered_models", pageSize="5").json()
    assert page == {"items": page["items"], "nextPageToken": "", "pageSize": 5, "size": 1}


def test_pages_follow_the_cursor_until_the_token_is_empty(api: Api) -> None:
    for name in "abcde":
        api.model(name)
    assert _walk(api, "/registered_models", pageSize="2") == [["a", "b"], ["c", "d"], ["e"]]


def test_empty_token_returns_the_first_page(api: Api) -> None:
    for name in "abc":
        api.model(name)
    first = api.get("/registered_models", pageSize="2").json()
    again = api.get("/registered_models", pageSize="2", nextPageToken="").json()
    assert again == first


def test_cursor_is_a_keyset_so_new_rows_do_not_shift_pages(api: Api) -> None:
    for name in "abc":
        api.model(name)
    first = api.get("/registered_models", pageSize="2", sortOrder="DESC").json()
    api.model("z")  # newest, sorts before the cursor in DESC order
    second = api.get(
        "/registered_models", pageSize="2", sortOrder="DESC", nextPageToken=first["nextPageToken"]
    ).json()
    assert (_names(first), _names(second)) == (["c", "b"], ["a"])


def test_order_by_last_update_time_moves_patched_rows_last(api: Api) -> None:
    first = api.model("a")
    api.model("b")
    api.patch(f"/registered_models/{first['id']}", {"description": "touched"})
    page = api.get("/registered_models", orderBy="LAST_UPDATE_TIME").json()
    assert _names(page) == ["b", "a"]
    descending = api.get("/registered_models", orderBy="LAST_UPDATE_TIME", sortOrder="DESC").json()
    assert _names(descending) == ["a", "b"]


def test_nested_lists_page_too(api: Api) -> None:
    model = api.model()
    for name in ("v1", "v2", "v3"):
        api.version(model["id"], name)
    assert _walk(api, f"/registered_models/{model['id']}/versions", pageSize="2") == [["v1", "v2"], ["v3"]]


@pytest.mark.parametrize(
    "params",
    [
        {"nextPageToken": "garbage"},
        {"pageSize": "0"},
        {"pageSize": "ten"},
        {"orderBy": "NAME"},
        {"sortOrder": "UP"},
    ],
)
def test_bad_list_options_are_400(api: Api, params: dict[str, str]) -> None:
    response = api.get("/registered_models", **params)
    assert response.status_code == 400
    assert response.json()["code"] == "Bad Request"


def test_token_from_another_order_is_400(api: Api) -> None:
    for name in "abc":
        api.model(name)
    token = api.get("/registered_models", pageSize="1").json()["nextPageToken"]
    assert api.get("/registered_models", orderBy="CREATE_TIME", nextPageToken=token).status_code == 400
