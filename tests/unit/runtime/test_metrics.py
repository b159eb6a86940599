"""GPU gauges: read from torch.cuda at scrape time, absent without a GPU, robust to a missing NVML."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

from diffusers_runtime.metrics import RuntimeMetrics
from prometheus_client import REGISTRY, generate_latest

GIB = 1024**3


@dataclass
class FakeCuda:
    """torch.cuda's read-only surface with settable figures per device."""

    available: bool = True
    allocated: list[int] = field(default_factory=lambda: [2 * GIB, 1 * GIB])
    reserved: list[int] = field(default_factory=lambda: [3 * GIB, 2 * GIB])
    peak: list[int] = field(default_factory=lambda: [5 * GIB, 1 * GIB])
    total: list[int] = field(default_factory=lambda: [24 * GIB, 24 * GIB])
    busy_percent: list[int] = field(default_factory=lambda: [87, 0])
    utilization_error: BaseException | None = None

    def is_available(self) -> bool:
        return self.available

    def device_count(self) -> int:
        return len(self.allocated)

    def memory_allocated(self, device: int) -> int:
        return self.allocated[device]

    def memory_reserved(self, device: int) -> int:
        return self.reserved[device]

    def max_memory_allocated(self, device: int) -> int:
        return self.peak[device]

    def get_device_properties(self, device: int) -> SimpleNamespace:
        return SimpleNamespace(total_memory=self.total[device])

    def utilization(self, device: int) -> int:
        if self.utilization_error is not None:
            raise self.utilization_error
        return self.busy_percent[device]


def _value(metric: str, model: str, gpu: int) -> float | None:
    return REGISTRY.get_sample_value(metric, {"model_name": model, "gpu": str(gpu)})


def _gpu_series(model: str) -> list[str]:
    text = generate_latest(REGISTRY).decode()
    return [line for line in text.splitlines() if line.startswith("diffusers_gpu") and f'"{model}"' in line]


def test_no_gpu_exports_no_gpu_series() -> None:
    assert RuntimeMetrics("cpu-only").watch_gpus(FakeCuda(available=False)) == 0
    assert _gpu_series("cpu-only") == []


def test_torch_without_cuda_exports_nothing() -> None:
    # This machine's torch is the CPU build: the default reader must take the absent-GPU path.
    assert RuntimeMetrics("torch-cpu").watch_gpus() == 0
    assert _gpu_series("torch-cpu") == []


def test_present_gpus_export_memory_and_utilisation_per_device() -> None:
    assert RuntimeMetrics("two-gpus").watch_gpus(FakeCuda()) == 2

    assert _value("diffusers_gpu_memory_allocated_bytes", "two-gpus", 0) == 2 * GIB
    assert _value("diffusers_gpu_memory_reserved_bytes", "two-gpus", 0) == 3 * GIB
    assert _value("diffusers_gpu_memory_peak_bytes", "two-gpus", 0) == 5 * GIB
    assert _value("diffusers_gpu_memory_total_bytes", "two-gpus", 1) == 24 * GIB
    assert _value("diffusers_gpu_utilization_ratio", "two-gpus", 0) == 0.87
    assert _value("diffusers_gpu_utilization_ratio", "two-gpus", 1) == 0.0


def test_figures_are_read_when_scraped() -> None:
    cuda = FakeCuda()
    RuntimeMetrics("live").watch_gpus(cuda)
    cuda.allocated[0] = 7 * GIB
    cuda.peak[0] = 9 * GIB
    cuda.busy_percent[0] = 100

    assert _value("diffusers_gpu_memory_allocated_bytes", "live", 0) == 7 * GIB
    assert _value("diffusers_gpu_memory_peak_bytes", "live", 0) == 9 * GIB
    assert _value("diffusers_gpu_utilization_ratio", "live", 0) == 1.0


def test_without_nvml_memory_is_exported_and_utilisation_is_not() -> None:
    cuda = FakeCuda(utilization_error=ModuleNotFoundError("nvidia-ml-py does not seem to be installed"))
    assert RuntimeMetrics("no-nvml").watch_gpus(cuda) == 2

    assert _value("diffusers_gpu_memory_reserved_bytes", "no-nvml", 1) == 2 * GIB
    assert _value("diffusers_gpu_utilization_ratio", "no-nvml", 0) is None


def test_nvml_failing_later_marks_utilisation_unknown_and_keeps_the_scrape() -> None:
    cuda = FakeCuda()
    RuntimeMetrics("nvml-lost").watch_gpus(cuda)
    cuda.utilization_error = RuntimeError("cuda driver can't be loaded, is cuda enabled?")

    value = _value("diffusers_gpu_utilization_ratio", "nvml-lost", 0)
    assert value is not None and math.isnan(value)
    assert _value("diffusers_gpu_memory_allocated_bytes", "nvml-lost", 0) == 2 * GIB
