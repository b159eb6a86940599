"""The upload plan's pure parts: how many transfers run at once, what goes in one request."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe.multipart import MAX_PARTS, MultipartFile
from modelpipe.s3 import MIB
from modelpipe.uploads import (
    FAST_LINK_SINGLE_REQUEST_MAX,
    S3_SINGLE_REQUEST_LIMIT,
    StreamController,
    UploadConfig,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _finish_level(controller: StreamController, clock: FakeClock, *, seconds: float, rate: float) -> None:
    """Every slot of the current level finishes one transfer started now, together moving ``rate`` B/s."""
    started = controller.now()
    clock.now += seconds
    level = controller.limit
    for _ in range(level):
        controller.finished(started, int(rate * seconds / level))


def test_controller_doubles_while_throughput_grows_and_stops_at_the_maximum() -> None:
    clock = FakeClock()
    controller = StreamController(initial=2, maximum=10, clock=clock)
    for rate, expected in [(100.0, 4), (180.0, 8), (300.0, 10), (400.0, 10)]:
        _finish_level(controller, clock, seconds=1.0, rate=rate)
        assert controller.limit == expected
    assert controller.settled


def test_controller_goes_back_to_the_best_level_when_more_streams_do_not_help() -> None:
    clock = FakeClock()
    controller = StreamController(initial=2, maximum=10, clock=clock)
    _finish_level(controller, clock, seconds=1.0, rate=100.0)  # 2 streams: 100 B/s -> try 4
    _finish_level(controller, clock, seconds=1.0, rate=105.0)  # 4 streams: +5 %, not worth it
    assert (controller.limit, controller.settled) == (2, True)
    _finish_level(controller, clock, seconds=1.0, rate=1000.0)
    assert controller.limit == 2, "a settled controller does not probe again"


def test_controller_ignores_transfers_started_before_the_current_level() -> None:
    clock = FakeClock()
    controller = StreamController(initial=1, maximum=4, clock=clock)
    early = controller.now()
    _finish_level(controller, clock, seconds=1.0, rate=100.0)
    assert controller.limit == 2
    # A slow transfer from level 1 finishing now says nothing about level 2.
    controller.finished(early, 1)
    controller.finished(early, 1)
    assert controller.limit == 2 and not controller.settled


def test_controller_waits_until_every_slot_of_a_level_finished_once() -> None:
    clock = FakeClock()
    controller = StreamController(initial=4, maximum=8, clock=clock)
    started = controller.now()
    clock.now = 1.0
    for _ in range(3):
        controller.finished(started, 100)
    assert controller.limit == 4
    controller.finished(started, 100)
    assert controller.limit == 8


def test_controller_starting_at_the_maximum_never_probes() -> None:
    controller = StreamController(initial=12, maximum=10)
    assert (controller.limit, controller.settled) == (10, True)


@pytest.mark.parametrize(
    ("config", "fast", "expected"),
    [
        (UploadConfig(), True, FAST_LINK_SINGLE_REQUEST_MAX),
        (UploadConfig(part_size=16 * MIB), False, 16 * MIB),
        (UploadConfig(single_request_max=64 * MIB), False, 64 * MIB),
        (UploadConfig(single_request_max=64 * MIB), True, 64 * MIB),
        (
            UploadConfig(single_request_max=8 * 1024 * MIB),
            True,
            S3_SINGLE_REQUEST_LIMIT,
        ),
    ],
    ids=[
        "fast-link",
        "slow-link-part-size",
        "explicit-slow",
        "explicit-fast",
        "capped-at-s3-limit",
    ],
)
def test_single_request_limit_follows_the_link_unless_set(
    config: UploadConfig, fast: bool, expected: int
) -> None:
    assert config.single_request_limit(fast_link=fast) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_concurrency": 0}, "max_concurrency"), ({"part_size": 4 * MIB}, "5 MiB")],
)
def test_config_refuses_values_s3_cannot_take(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UploadConfig(**kwargs)


@pytest.mark.parametrize("gib", [1, 156, 157, 400])
def test_a_file_never_needs_more_parts_than_s3_numbers(tmp_path: Path, gib: int) -> None:
    """Above 10000 parts of the configured size: the smallest multiple that fits (the same every run)."""
    sparse = tmp_path / "checkpoint.safetensors"
    with sparse.open("wb") as handle:
        handle.truncate(gib * 1024 * MIB)  # sparse: nothing written to disk
    job = MultipartFile(None, sparse, "bucket", "key", extra_args={}, part_size=16 * MIB)
    assert job.count <= MAX_PARTS
    assert job.part_size % (16 * MIB) == 0
    assert (job.part_size == 16 * MIB) == (gib * 1024 <= 16 * MAX_PARTS)
    assert sum(job.part_size_of(n) for n in range(1, job.count + 1)) == gib * 1024 * MIB
