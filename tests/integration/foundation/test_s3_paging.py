"""The listing markers pages() follows are the ones a real store sends: each listing, a page at a time."""

from __future__ import annotations

from typing import Any

import pytest
from modelpipe import s3_pages
from modelpipe.s3_pages import pages

pytestmark = pytest.mark.integration


def test_each_listing_is_followed_to_its_end_one_item_per_page(s3_server: Any) -> None:
    client, bucket = s3_server.client(), s3_server.bucket
    keys = [f"paged/object-{index}" for index in range(4)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    uploads = [client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"] for key in keys[:3]]
    for number in (1, 2, 3):
        client.upload_part(Bucket=bucket, Key=keys[0], UploadId=uploads[0], PartNumber=number, Body=b"p")

    def collect(listing: Any, field: str, key: str) -> tuple[list[Any], int]:
        found, count = [], 0
        for page in listing:
            count += 1
            found += [item[key] for item in page.get(field, [])]
        return found, count

    objects, object_pages = collect(
        pages(client.list_objects_v2, s3_pages.OBJECTS, Bucket=bucket, Prefix="paged/", MaxKeys=1),
        "Contents",
        "Key",
    )
    listed_uploads, upload_pages = collect(
        pages(client.list_multipart_uploads, s3_pages.UPLOADS, Bucket=bucket, Prefix="paged/", MaxUploads=1),
        "Uploads",
        "UploadId",
    )
    parts, part_pages = collect(
        pages(client.list_parts, s3_pages.PARTS, Bucket=bucket, Key=keys[0], UploadId=uploads[0], MaxParts=1),
        "Parts",
        "PartNumber",
    )
    assert sorted(objects) == keys
    assert sorted(listed_uploads) == sorted(uploads)
    assert sorted(parts) == [1, 2, 3]
    # The store paged, one item a page (else no marker was followed and this test would prove nothing).
    assert object_pages >= 4 and upload_pages >= 3 and part_pages >= 3
