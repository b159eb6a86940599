"""Shared fixtures: each area keeps its fixtures in tests/fixtures/<area>.py."""

import logging
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.s3",
    "tests.fixtures.registry",
    "tests.fixtures.runtime",
    "tests.fixtures.image_registry",
    "tests.fixtures.kube",
    "tests.fixtures.llm",
    "tests.fixtures.llm_eval",
]


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """``modelpipe.cli.main`` points the root logger at the sys.stderr of its moment: in a test that is
    pytest's capture, closed after the test, and later tests' records would hit "I/O operation on closed
    file". Each test gets the root handlers and levels it started with back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    modelpipe_level = logging.getLogger("modelpipe").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("modelpipe").setLevel(modelpipe_level)
