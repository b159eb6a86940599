"""Shared fixtures: each area keeps its fixtures in tests/fixtures/<area>.py."""

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
