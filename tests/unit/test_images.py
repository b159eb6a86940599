"""The one image-reference check: repositories and "pinned by digest"."""

from __future__ import annotations

import pytest
from modelpipe.errors import ConfigError
from modelpipe.images import PinnedImage, is_digest, parse_pinned_image

DIGEST = "sha256:" + "a" * 64


def test_a_pinned_reference_splits_into_repository_and_digest() -> None:
    image = parse_pinned_image(f"127.0.0.1:5000/org/runtime@{DIGEST}")
    assert image == PinnedImage("127.0.0.1:5000/org/runtime", DIGEST)
    assert image.ref == f"127.0.0.1:5000/org/runtime@{DIGEST}"


@pytest.mark.parametrize(
    "ref",
    [
        "quay.io/org/runtime:latest",
        "quay.io/org/runtime@sha256:abc",
        "quay.io/org/runtime@sha256:" + "A" * 64,
        "@" + DIGEST,
    ],
)
def test_anything_not_pinned_is_refused_naming_the_flag(ref: str) -> None:
    with pytest.raises(ConfigError, match=r"--prebuilt-image .* (not pinned by digest|not a valid image)"):
        parse_pinned_image(ref, "--prebuilt-image")


def test_a_tag_next_to_the_digest_is_refused() -> None:
    with pytest.raises(ConfigError, match="without tag or digest"):
        parse_pinned_image(f"quay.io/org/runtime:v1@{DIGEST}")


def test_is_digest_wants_lowercase_sha256() -> None:
    assert is_digest(DIGEST) and not is_digest(DIGEST.upper()) and not is_digest("sha512:" + "a" * 64)
