"""What each text-to-image family needs to be served as its authors intend: defaults, sizes, knobs.

Everything here is read from the loaded pipeline (its ``__call__`` signature, component configs and
classes), plus explicit serving defaults for distilled models whose pipeline defaults are wrong for them
(sd-turbo, sdxl-turbo, FLUX.1-schnell, LCM, Lightning). One ``FamilyRules`` per loaded model; the request
schema asks it whether a request fits the model.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tokenizers import Tokenizer

from .errors import BadRequestError

DEFAULT_SCHEDULER = "default"
# Request name -> diffusers scheduler class. A name is offered only when the loaded pipeline lists the class
# among its scheduler's `compatibles` and the class works for the family (see `_scheduler_names`).
SCHEDULERS: dict[str, str] = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "deis": "DEISMultistepScheduler",
    "flow_match_euler": "FlowMatchEulerDiscreteScheduler",
}
# Schedulers whose set_timesteps takes the `sigmas`/`mu` the flow-matching pipelines pass.
_FLOW_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler",)
# PNDM's Runge-Kutta warm-up needs four model outputs; fewer steps crash on a shape mismatch.
PNDM_MIN_STEPS = 4
MIN_SIDE = 64
MAX_SIDE = 4096

# Distilled models whose pipeline class is their base model's: recognised by name (Hub repo or folder),
# served at the settings their model cards give. Explicit serving defaults (flags) override these.
_DISTILLED_BY_NAME: tuple[tuple[re.Pattern[str], int, float], ...] = (
    (re.compile(r"turbo", re.IGNORECASE), 1, 0.0),  # sd-turbo, sdxl-turbo: 1-4 steps, no CFG
    (re.compile(r"lightning", re.IGNORECASE), 4, 0.0),  # SDXL-Lightning: trailing Euler, no CFG
    (re.compile(r"(^|[^a-z])lcm([^a-z]|$)", re.IGNORECASE), 4, 1.0),  # LCM distilled / LCM-LoRA merged
)
# FLUX.1-schnell's model card: 4 steps, no guidance, prompts of at most 256 T5 tokens.
SCHNELL_STEPS = 4
SCHNELL_MAX_SEQUENCE_LENGTH = 256


@dataclass(frozen=True)
class ServingDefaults:
    """Settings a request without them gets; None leaves the value to the model."""

    steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None

    def over(self, base: ServingDefaults) -> ServingDefaults:
        """These values where set, ``base``'s elsewhere."""
        return ServingDefaults(
            steps=self.steps if self.steps is not None else base.steps,
            guidance_scale=self.guidance_scale if self.guidance_scale is not None else base.guidance_scale,
            height=self.height if self.height is not None else base.height,
            width=self.width if self.width is not None else base.width,
        )


@dataclass(frozen=True)
class FamilyRules:
    """How one loaded pipeline is driven and what a request may ask of it.

    Attributes:
        family: Short family name (``sd``, ``sdxl``, ``sd3``, ``flux``, ``pixart``, ``sana`` or ``other``).
        steps, guidance_scale, height, width: The serving defaults.
        defaults_source: Where the defaults came from, for logs and metadata.
        size_multiple: Height and width must be multiples of this.
        max_side: Largest height or width the denoiser accepts.
        negative_prompt: None when negative prompts take effect, else why they are refused.
        guidance: ``cfg`` (classifier-free guidance), ``embedded`` (guidance-distilled input) or ``none``.
        scheduler_names: Scheduler names a request may choose.
        max_prompt_tokens: Longest prompt, in tokens of the text encoder that reads the most; 0 for no check.
        call_kwargs: Fixed pipeline arguments (resolution binning off, sequence length).
    """

    family: str
    steps: int
    guidance_scale: float
    height: int
    width: int
    defaults_source: str = "pipeline"
    size_multiple: int = 8
    max_side: int = MAX_SIDE
    negative_prompt: str | None = None
    guidance: str = "cfg"
    scheduler_names: tuple[str, ...] = (DEFAULT_SCHEDULER,)
    default_scheduler_class: str = ""
    max_prompt_tokens: int = 0
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    count_tokens: Callable[[str], int] | None = field(default=None, repr=False, compare=False)

    @property
    def defaults(self) -> ServingDefaults:
        return ServingDefaults(self.steps, self.guidance_scale, self.height, self.width)

    def metadata(self) -> dict[str, Any]:
        """What the runtime reports about the model (V2 metadata, OpenAI models route)."""
        return {
            "family": self.family,
            "default_steps": self.steps,
            "default_guidance": self.guidance_scale,
            "default_size": f"{self.width}x{self.height}",
            "defaults_source": self.defaults_source,
            "size_multiple": self.size_multiple,
            "max_side": self.max_side,
            "schedulers": list(self.scheduler_names),
            "negative_prompt": self.negative_prompt is None,
            "guidance": self.guidance,
            "max_prompt_tokens": self.max_prompt_tokens,
        }

    def check_size(self, where: str, height: int, width: int) -> None:
        """Raises BadRequestError naming height or width when the denoiser cannot make that size."""
        low = max(MIN_SIDE, self.size_multiple)
        for name, side in (("height", height), ("width", width)):
            if side % self.size_multiple or not low <= side <= self.max_side:
                raise BadRequestError(
                    f"{where}{name}: must be a multiple of {self.size_multiple} between {low} and "
                    f"{self.max_side} for this {self.family} model, got {side}"
                )

    def check_knobs(
        self,
        where: str,
        *,
        steps: int,
        guidance_scale: float,
        guidance_given: bool,
        scheduler: str,
        has_negative_prompt: bool,
    ) -> None:
        """Raises BadRequestError naming the field a request sets that this family cannot honour."""
        if has_negative_prompt and self.negative_prompt is not None:
            raise BadRequestError(f"{where}negative_prompt: {self.negative_prompt}")
        if self.guidance == "none" and guidance_given and guidance_scale != self.guidance_scale:
            raise BadRequestError(
                f"{where}guidance_scale: this {self.family} model has no guidance input "
                f"(timestep-distilled), so it would be ignored; omit it or send {self.guidance_scale:g}"
            )
        scheduler_class = SCHEDULERS.get(scheduler, self.default_scheduler_class)
        if scheduler_class == "PNDMScheduler" and steps < PNDM_MIN_STEPS:
            raise BadRequestError(
                f"{where}num_inference_steps: the PNDM scheduler needs at least {PNDM_MIN_STEPS} steps, "
                f"got {steps}; ask for more steps or another scheduler"
            )

    def check_prompt(self, field_name: str, text: str) -> None:
        """Raises BadRequestError when the text encoder would silently cut the prompt."""
        if self.count_tokens is None or not self.max_prompt_tokens:
            return
        tokens = self.count_tokens(text)
        if tokens > self.max_prompt_tokens:
            raise BadRequestError(
                f"{field_name}: {tokens} tokens, longer than the {self.max_prompt_tokens} tokens this "
                "model's text encoder reads; shorten it (the rest would be silently dropped)"
            )


def family_of(pipe: Any) -> str:
    name = type(pipe).__name__
    for prefix, family in (
        ("StableDiffusionXL", "sdxl"),
        ("StableDiffusion3", "sd3"),
        ("Flux", "flux"),
        ("PixArt", "pixart"),
        ("Sana", "sana"),
        ("StableDiffusion", "sd"),
        ("LatentConsistencyModel", "sd"),
    ):
        if name.startswith(prefix):
            return family
    return "other"


def rules_for(
    pipe: Any, *, model_name_hint: str = "", explicit: ServingDefaults | None = None
) -> FamilyRules:
    """Work out the serving rules of a loaded pipeline.

    Args:
        pipe: The diffusers pipeline.
        model_name_hint: Where the model came from (Hub repo id or folder name); names a distilled model
            whose pipeline class is its base model's (``turbo``, ``lightning``, ``lcm``).
        explicit: Serving defaults set by the operator; they win over everything else.
    """
    family = family_of(pipe)
    params = inspect.signature(pipe.__call__).parameters
    steps = _int_default(params, "num_inference_steps", 50)
    guidance = _float_default(params, "guidance_scale", 7.5)
    height, width = _default_size(pipe)
    source = "pipeline"
    guidance_kind = "cfg"
    negative: str | None = None if "negative_prompt" in params else "this model's pipeline takes none"
    call_kwargs: dict[str, Any] = {}
    if "use_resolution_binning" in params:
        # Binning computes at the nearest training aspect ratio and resizes: the work would not be the size
        # asked for, and --max_pixels would not bound it.
        call_kwargs["use_resolution_binning"] = False
    denoiser = _denoiser(pipe)
    if family == "flux":
        negative = (
            "FluxPipeline applies a negative prompt only with true classifier-free guidance "
            "(true_cfg_scale > 1, twice the compute), which this server does not run; without it the "
            "negative prompt is silently ignored, so omit negative_prompt"
        )
        if getattr(denoiser.config, "guidance_embeds", False):
            guidance_kind = "embedded"
        else:  # FLUX.1-schnell: timestep-distilled, no guidance input
            guidance_kind = "none"
            steps, guidance, source = SCHNELL_STEPS, 0.0, "distilled (no guidance embedding)"
            call_kwargs["max_sequence_length"] = SCHNELL_MAX_SEQUENCE_LENGTH
    scheduler_class = type(pipe.scheduler).__name__
    if scheduler_class == "LCMScheduler" and type(pipe).__name__ != "LatentConsistencyModelPipeline":
        steps, guidance, source = 4, 1.0, "distilled (LCM scheduler)"
    for pattern, hint_steps, hint_guidance in _DISTILLED_BY_NAME:
        if family in ("sd", "sdxl") and pattern.search(model_name_hint):
            steps, guidance, source = hint_steps, hint_guidance, f"distilled ({pattern.pattern} in name)"
            break
    rules = FamilyRules(
        family=family,
        steps=steps,
        guidance_scale=guidance,
        height=height,
        width=width,
        defaults_source=source,
        size_multiple=_size_multiple(pipe, family),
        max_side=_max_side(pipe, family),
        negative_prompt=negative,
        guidance=guidance_kind,
        scheduler_names=_scheduler_names(pipe),
        default_scheduler_class=scheduler_class,
        call_kwargs=call_kwargs,
    )
    rules = _with_prompt_limit(rules, pipe, params, call_kwargs)
    if explicit is not None and explicit != ServingDefaults():
        chosen = explicit.over(rules.defaults)
        rules = replace(
            rules,
            steps=int(chosen.steps or rules.steps),
            guidance_scale=float(chosen.guidance_scale if chosen.guidance_scale is not None else 0.0),
            height=int(chosen.height or rules.height),
            width=int(chosen.width or rules.width),
            defaults_source="serving defaults (flags) over " + rules.defaults_source,
        )
    return rules


def _denoiser(pipe: Any) -> Any:
    return getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)


def _int_default(params: Any, name: str, fallback: int) -> int:
    value = params[name].default if name in params else None
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


def _float_default(params: Any, name: str, fallback: float) -> float:
    value = params[name].default if name in params else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else fallback


def default_size(pipe: Any) -> tuple[int, int]:
    """(height, width) the model was trained at: the pipeline's default sample size times the VAE factor."""
    return _default_size(pipe)


def _default_size(pipe: Any) -> tuple[int, int]:
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        sample = _denoiser(pipe).config.sample_size
    scale = getattr(pipe, "vae_scale_factor", 8)
    if isinstance(sample, (list, tuple)):
        return int(sample[0]) * scale, int(sample[1]) * scale
    return int(sample) * scale, int(sample) * scale


def _size_multiple(pipe: Any, family: str) -> int:
    scale = int(getattr(pipe, "vae_scale_factor", 8))
    patch = int(getattr(_denoiser(pipe).config, "patch_size", None) or 1)
    if family == "flux":
        return max(8, scale * 2)  # latents are packed 2x2
    if family == "sana":
        return max(32, scale * patch)  # SanaPipeline.check_inputs
    return max(8, scale * patch)


def _max_side(pipe: Any, family: str) -> int:
    if family == "sd3":
        config = _denoiser(pipe).config
        limit = getattr(config, "pos_embed_max_size", None)
        if limit:
            return min(MAX_SIDE, int(limit) * int(config.patch_size) * int(pipe.vae_scale_factor))
    return MAX_SIDE


def _scheduler_names(pipe: Any) -> tuple[str, ...]:
    base = type(pipe.scheduler).__name__
    compatible = {cls.__name__ for cls in pipe.scheduler.compatibles} | {base}
    flow = base.startswith("FlowMatch")
    names = [DEFAULT_SCHEDULER]
    for name, cls in SCHEDULERS.items():
        if cls not in compatible:
            continue
        if flow != (cls in _FLOW_SCHEDULERS):
            continue  # a flow-matching model gets flow-matching schedulers only, and vice versa
        if cls == "LMSDiscreteScheduler" and importlib.util.find_spec("scipy") is None:
            continue  # LMS integrates its coefficients with scipy
        names.append(name)
    return tuple(names)


def _with_prompt_limit(
    rules: FamilyRules, pipe: Any, params: Any, call_kwargs: dict[str, Any]
) -> FamilyRules:
    """The prompt limit of the encoder that reads the most: T5/Gemma sequence length, else CLIP's 77."""
    long_tokenizer = getattr(pipe, "tokenizer_3", None) or (
        getattr(pipe, "tokenizer_2", None) if rules.family == "flux" else None
    )
    if rules.family in ("pixart", "sana"):
        long_tokenizer = getattr(pipe, "tokenizer", None)
    if long_tokenizer is not None:
        limit = call_kwargs.get("max_sequence_length") or _int_default(params, "max_sequence_length", 0)
        if not limit:
            return rules
        counter = _counter(long_tokenizer, special=True)
        return replace(rules, max_prompt_tokens=int(limit), count_tokens=counter)
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return rules
    limit = int(getattr(tokenizer, "model_max_length", 77))
    if limit > 100_000:  # tokenizers without a limit report a huge sentinel
        return rules
    return replace(rules, max_prompt_tokens=limit, count_tokens=_counter(tokenizer, special=True))


def _counter(tokenizer: Any, *, special: bool) -> Callable[[str], int]:
    # A private copy: a fast tokenizer keeps its truncation/padding settings in shared mutable state, and
    # counting on the event loop while the engine thread encodes a batch made the engine's call unpadded
    # ("Sizes of tensors must match ... 2 but got size 77"), failing valid requests of other clients.
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if isinstance(backend, Tokenizer):
        # The Rust tokenizer alone counts the same ids in a fifth of the time transformers' __call__ takes
        # (12 us instead of 46 us for a CLIP prompt); this runs on the event loop for every prompt.
        rust = Tokenizer.from_str(backend.to_str())
        rust.no_truncation()
        rust.no_padding()

        def count_ids(text: str) -> int:
            return len(rust.encode(text, add_special_tokens=special).ids)

        return count_ids
    own = copy.deepcopy(tokenizer)

    def count(text: str) -> int:
        return len(own(text, add_special_tokens=special, truncation=False)["input_ids"])

    return count
