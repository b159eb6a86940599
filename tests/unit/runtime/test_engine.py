"""Engine batching, padding, seeds, queue bound, OOM and shutdown, on a recording fake pipeline."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from diffusers_runtime.engine import (
    BatchingOptions,
    BatchKey,
    Engine,
    GeneratedImage,
    ImageRequest,
    LoadedPipeline,
)
from diffusers_runtime.errors import (
    EngineStoppedError,
    GenerationError,
    GenerationOutOfMemoryError,
    QueueFullError,
    ServerBusyError,
)
from diffusers_runtime.metrics import RuntimeMetrics
from kserve.errors import InvalidInput

KEY = BatchKey(height=64, width=64, num_inference_steps=2, guidance_scale=7.5)
OTHER_KEY = BatchKey(height=64, width=64, num_inference_steps=1, guidance_scale=7.5)


class FakePipeline:
    """Records each call; returns ``(prompt, seed drawn from the generator)`` per image."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_with: BaseException | None = None

    def __call__(self, **kwargs: Any) -> Any:
        self.gate.wait(10)
        self.calls.append(kwargs)
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        images = [(p, g.initial_seed()) for p, g in zip(kwargs["prompt"], kwargs["generator"], strict=True)]
        return SimpleNamespace(images=images)


class FakeLoaded(LoadedPipeline):
    def pipeline_for(self, scheduler: str) -> Any:
        return self.pipeline


def make_engine(**batching: Any) -> tuple[Engine, FakePipeline]:
    fake = FakePipeline()
    loaded = FakeLoaded(
        pipeline=fake,
        device=torch.device("cpu"),
        dtype=torch.float32,
        default_height=64,
        default_width=64,
        scheduler_names=("default",),
        supports_negative_prompt=True,
        supports_step_callback=False,
    )
    options = {
        "max_batch_size": 4,
        "max_batch_delay_s": 0.2,
        "max_queue": 8,
        "batch_invariant": False,
        **batching,
    }
    engine = Engine(loaded, BatchingOptions(**options), RuntimeMetrics("unit-test"))
    engine.start()
    return engine, fake


def image(prompt: str, seed: int = 1, key: BatchKey = KEY) -> ImageRequest:
    return ImageRequest(prompt=prompt, seed=seed, key=key)


def start_held_call(engine: Engine, fake: FakePipeline) -> Future[list[GeneratedImage]]:
    """Submit "running" and return once the worker has taken it into a pipeline call held at the gate."""
    fake.gate.clear()
    running = engine.submit([image("running")])
    deadline = time.monotonic() + 10
    while engine.queued_images and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not engine.queued_images, "the worker never took the first image"
    return running


def test_compatible_images_share_calls_up_to_max_batch_size() -> None:
    engine, fake = make_engine()
    futures = [engine.submit([image(f"p{i}", i)]) for i in range(6)]
    results = [f.result(10) for f in futures]
    engine.stop()
    assert [len(c["prompt"]) for c in fake.calls] == [4, 2]
    assert [r[0].image for r in results] == [(f"p{i}", i) for i in range(6)]


def test_incompatible_settings_never_share_a_call() -> None:
    engine, fake = make_engine()
    futures = [
        engine.submit([image("a", key=KEY)]),
        engine.submit([image("b", key=OTHER_KEY)]),
    ]
    for future in futures:
        future.result(10)
    engine.stop()
    assert sorted((c["num_inference_steps"], c["prompt"]) for c in fake.calls) == [
        (1, ["b"]),
        (2, ["a"]),
    ]


def test_batch_invariant_pads_every_call_to_max_batch_size() -> None:
    engine, fake = make_engine(batch_invariant=True, max_batch_delay_s=0)
    result = engine.submit([image("only", 5)]).result(10)
    engine.stop()
    assert len(fake.calls[0]["prompt"]) == 4
    assert [r.image for r in result] == [("only", 5)]


def test_each_image_gets_its_own_generator_seeded_with_its_seed() -> None:
    engine, fake = make_engine()
    result = engine.submit([image("a", 11), image("b", 12), image("c", 13)]).result(10)
    engine.stop()
    generators = fake.calls[0]["generator"]
    assert len({id(g) for g in generators}) == 3
    assert [r.seed for r in result] == [11, 12, 13]
    assert [r.image[1] for r in result] == [11, 12, 13]


def test_full_queue_raises_queue_full_with_retry_after() -> None:
    engine, fake = make_engine(max_queue=2, max_batch_size=1, max_batch_delay_s=0)
    running = start_held_call(engine, fake)
    waiting = engine.submit([image("a"), image("b")])
    with pytest.raises(QueueFullError) as caught:
        engine.submit([image("c")])
    assert caught.value.status_code == 429 and caught.value.retry_after >= 1
    fake.gate.set()
    running.result(10)
    waiting.result(10)
    engine.stop()


def test_out_of_memory_fails_the_batch_and_the_engine_keeps_serving() -> None:
    engine, fake = make_engine(max_batch_delay_s=0)
    fake.fail_with = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    with pytest.raises(GenerationOutOfMemoryError) as caught:
        engine.submit([image("big")]).result(10)
    assert caught.value.status_code == 503
    assert engine.submit([image("next", 3)]).result(10)[0].image == ("next", 3)
    engine.stop()


def test_cpu_allocator_failure_counts_as_out_of_memory() -> None:
    engine, fake = make_engine(max_batch_delay_s=0)
    fake.fail_with = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:119] DefaultCPUAllocator: can't allocate memory"
    )
    with pytest.raises(GenerationOutOfMemoryError):
        engine.submit([image("big")]).result(10)
    engine.stop()


def test_other_errors_reach_the_request_as_a_generation_error_naming_the_cause() -> None:
    engine, fake = make_engine(max_batch_delay_s=0)
    fake.fail_with = RuntimeError("bug")
    with pytest.raises(GenerationError, match="RuntimeError: bug") as caught:
        engine.submit([image("x")]).result(10)
    assert isinstance(caught.value.__cause__, RuntimeError)
    engine.stop()


def test_stop_fails_queued_work_and_refuses_new_work() -> None:
    engine, fake = make_engine(max_batch_size=1, max_batch_delay_s=0)
    running = start_held_call(engine, fake)
    queued = engine.submit([image("queued")])
    stopper = threading.Thread(target=engine.stop)
    stopper.start()
    with pytest.raises(EngineStoppedError):
        queued.result(10)
    fake.gate.set()
    stopper.join(10)
    assert running.result(10)[0].image[0] == "running"
    with pytest.raises(EngineStoppedError):
        engine.submit([image("late")])


def test_cancelled_request_is_not_generated() -> None:
    engine, fake = make_engine(max_batch_size=1, max_batch_delay_s=0)
    running = start_held_call(engine, fake)
    cancelled = engine.submit([image("gone")])
    assert cancelled.cancel()
    fake.gate.set()
    running.result(10)
    engine.submit([image("after")]).result(10)
    engine.stop()
    assert [c["prompt"] for c in fake.calls] == [["running"], ["after"]]


def test_straggler_waits_for_the_next_arrivals_after_the_worker_frees_up() -> None:
    engine, fake = make_engine(max_batch_delay_s=0.3)
    fake.gate.clear()
    first = engine.submit([image("A")])
    time.sleep(0.6)  # A is running; B queues behind it and waits longer than the delay
    straggler = engine.submit([image("B")])
    time.sleep(0.35)
    fake.gate.set()
    first.result(10)
    later = [engine.submit([image(p)]) for p in "CDE"]
    for future in [straggler, *later]:
        future.result(10)
    engine.stop()
    assert [c["prompt"] for c in fake.calls] == [["A"], ["B", "C", "D", "E"]]


class PoisonAwarePipeline(FakePipeline):
    """Fails any call that holds the prompt "poison", as a tokenizer fails a whole batch on one input."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def __call__(self, **kwargs: Any) -> Any:
        if "poison" in kwargs["prompt"]:
            self.calls.append(kwargs)
            raise self.error
        return super().__call__(**kwargs)


@pytest.mark.parametrize(
    ("error", "expected"),
    [(ValueError("cannot tokenize"), InvalidInput), (RuntimeError("kernel failed"), GenerationError)],
)
def test_a_poisoned_image_fails_its_request_alone_and_its_batch_mates_succeed(
    error: Exception, expected: type[Exception]
) -> None:
    engine, _ = make_engine(max_batch_delay_s=0.3)
    engine.loaded.pipeline = PoisonAwarePipeline(error)
    good = [engine.submit([image(f"good{i}", i)]) for i in range(2)]
    poisoned = engine.submit([image("poison")])
    more = engine.submit([image("good2", 2)])
    assert [f.result(10)[0].image[0] for f in (*good, more)] == ["good0", "good1", "good2"]
    with pytest.raises(expected, match=str(error)):
        poisoned.result(10)
    engine.stop()


class SteppingPipeline(FakePipeline):
    """Calls ``callback_on_step_end`` after each of ``num_inference_steps`` steps, like diffusers."""

    def __init__(self) -> None:
        super().__init__()
        self.steps_run = 0
        self.step_gate = threading.Event()
        self.step_gate.set()

    def __call__(self, **kwargs: Any) -> Any:
        callback = kwargs["callback_on_step_end"]
        for step in range(kwargs["num_inference_steps"]):
            self.step_gate.wait(10)
            self.steps_run += 1
            callback(self, step, step, {})
        return super().__call__(**kwargs)


def test_abandoned_requests_stop_at_the_next_step_and_leave_the_queue() -> None:
    engine, _ = make_engine(max_batch_size=1, max_batch_delay_s=0)
    pipe = SteppingPipeline()
    engine.loaded.pipeline = pipe
    engine.loaded.supports_step_callback = True
    long_key = BatchKey(height=64, width=64, num_inference_steps=50, guidance_scale=7.5)
    pipe.step_gate.clear()
    running = engine.submit([image("running", key=long_key)])
    queued = engine.submit([image("queued", key=long_key)])
    while engine.queued_images > 1:
        time.sleep(0.01)
    assert running.cancel() and queued.cancel()
    pipe.step_gate.set()
    after = engine.submit([image("after")])
    assert after.result(10)[0].image[0] == "after"
    assert pipe.steps_run <= 1 + KEY.num_inference_steps  # the abandoned call stopped after its first step
    assert engine.pending_pixel_steps == 0
    engine.stop()


def test_server_wide_pixel_step_limit_is_429_with_retry_after() -> None:
    engine, fake = make_engine(
        max_batch_size=1, max_batch_delay_s=0, max_pending_pixel_steps=2 * KEY.pixel_steps
    )
    running = start_held_call(engine, fake)
    queued = engine.submit([image("fits")])
    with pytest.raises(ServerBusyError, match="--max_server_pixel_steps=16384") as caught:
        engine.submit([image("too much")])
    assert caught.value.retry_after >= 1
    fake.gate.set()
    running.result(10), queued.result(10)
    assert engine.pending_pixel_steps == 0
    engine.submit([image("room again")]).result(10)
    engine.stop()


def test_a_request_is_delivered_on_the_worker_that_generated_it() -> None:
    engine, _ = make_engine(max_batch_delay_s=0)
    future = engine.submit([image("a")])
    delivered_on: list[str] = []
    future.add_done_callback(lambda _: delivered_on.append(threading.current_thread().name))
    future.result(10)
    engine.stop()
    assert delivered_on and delivered_on[0].startswith("diffusers-engine")


def test_the_next_batch_runs_while_a_finished_one_is_still_being_delivered() -> None:
    """A slow done-callback (the model encodes there) holds its worker, not the pipeline."""
    engine, fake = make_engine(max_batch_size=1, max_batch_delay_s=0)
    release = threading.Event()
    first = engine.submit([image("first")])
    first.add_done_callback(lambda _: release.wait(10))
    first.result(10)
    second = engine.submit([image("second")])
    try:
        assert second.result(5)[0].image[0] == "second"
    finally:
        release.set()
        engine.stop()
    assert [c["prompt"] for c in fake.calls] == [["first"], ["second"]]


def test_images_of_one_request_split_over_concurrent_deliveries_all_arrive() -> None:
    engine, _ = make_engine(max_batch_size=1, max_batch_delay_s=0, max_queue=64)
    futures = [engine.submit([image(f"r{r}i{i}", i) for i in range(4)]) for r in range(8)]
    results = [f.result(10) for f in futures]
    engine.stop()
    assert [[g.image for g in result] for result in results] == [
        [(f"r{r}i{i}", i) for i in range(4)] for r in range(8)
    ]
