"""Tiny random-weight pipelines of every text-to-image family, built from configs of hidden size ~32.

Each builder returns an unsaved diffusers pipeline whose components have the family's real classes and
config structure (a factor-8 VAE where the family's size rules depend on it), seeded per component so the
same call gives the same weights. Sizes are chosen so one image at the default size takes well under a
second on a CPU core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelpipe.demo_models.tokenizers import clip_tokenizer, gemma_tokenizer, t5_tokenizer

SEED = 0
# SD 1.x / 2.x training schedule (and sd-turbo's): the betas every SD-family scheduler config carries.
_SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def _seeded(offset: int) -> None:
    import torch

    torch.manual_seed(SEED + offset)


def _clip_config(vocab_size: int, hidden_act: str = "quick_gelu") -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        layer_norm_eps=1e-5,
        hidden_act=hidden_act,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        projection_dim=32,
    )


def _t5_encoder(vocab_size: int, d_model: int = 32) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        # decoder_start_token_id reaches PretrainedConfig through **kwargs; T5Config's signature omits it.
        T5Config(  # type: ignore[call-arg]
            vocab_size=vocab_size,
            d_model=d_model,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=4,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            is_encoder_decoder=False,
            use_cache=False,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
    )


def _vae(latent_channels: int = 4, *, flow: bool = False) -> Any:
    """A factor-8 AutoencoderKL (four blocks) with 4 channels per block."""
    from diffusers import AutoencoderKL

    extra: dict[str, Any] = {}
    if flow:  # SD3 / Flux VAEs: no quant convs, shifted latents
        extra = {"use_quant_conv": False, "use_post_quant_conv": False, "shift_factor": 0.0609}
    return AutoencoderKL(
        block_out_channels=(4, 4, 4, 4),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=latent_channels,
        layers_per_block=1,
        norm_num_groups=2,
        sample_size=64,
        **extra,
    )


def _sd_unet(cross_attention_dim: int, **extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=4,
        **extra,
    )


def _sd2(scheduler: Any) -> Any:
    """An SD 2.x-shaped pipeline (linear projections, OpenCLIP-style text encoder) with ``scheduler``."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    tokenizer = clip_tokenizer()
    _seeded(1)
    unet = _sd_unet(32, attention_head_dim=(2, 4), use_linear_projection=True)
    _seeded(2)
    vae = _vae()
    _seeded(3)
    text_encoder = CLIPTextModel(_clip_config(len(tokenizer), hidden_act="gelu"))
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_sd2v() -> Any:
    """SD 2.x 768-v: DDIM with ``prediction_type: v_prediction``."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(
        **_SD_BETAS,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction",
    )
    return _sd2(scheduler)


def build_turbo() -> Any:
    """SD-Turbo: SD 2.1 architecture, Euler with trailing timesteps (served at 1 step, guidance 0)."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(**_SD_BETAS, steps_offset=1, timestep_spacing="trailing")
    return _sd2(scheduler)


def build_sdxl() -> Any:
    """SDXL: two CLIP encoders (the second with projection), text_time added conditioning."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = clip_tokenizer()
    _seeded(1)
    unet = _sd_unet(
        64,  # hidden sizes of both text encoders, concatenated
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six time ids + the pooled projection
    )
    _seeded(2)
    vae = _vae()
    _seeded(3)
    text_encoder = CLIPTextModel(_clip_config(len(tokenizer)))
    _seeded(4)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(len(tokenizer), hidden_act="gelu"))
    scheduler = EulerDiscreteScheduler(**_SD_BETAS, steps_offset=1, timestep_spacing="leading")
    return StableDiffusionXLPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=clip_tokenizer(),
        scheduler=scheduler,
    )


def build_sd3() -> Any:
    """SD3: MMDiT (patch 2: sizes in multiples of 16), two CLIP encoders with projection and a T5."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    tokenizer = clip_tokenizer()
    t5 = t5_tokenizer()
    _seeded(1)
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        pos_embed_max_size=16,  # 16 patches x 2 x 8 = at most 256 pixels a side
    )
    _seeded(2)
    vae = _vae(flow=True)
    _seeded(3)
    text_encoder = CLIPTextModelWithProjection(_clip_config(len(tokenizer)))
    _seeded(4)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(len(tokenizer), hidden_act="gelu"))
    _seeded(5)
    text_encoder_3 = _t5_encoder(len(t5))
    return StableDiffusion3Pipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        text_encoder_3=text_encoder_3,
        tokenizer=tokenizer,
        tokenizer_2=clip_tokenizer(),
        tokenizer_3=t5,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


def _flux(*, guidance_embeds: bool) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer = clip_tokenizer()
    t5 = t5_tokenizer()
    _seeded(1)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8),
    )
    _seeded(2)
    vae = _vae(flow=True)
    _seeded(3)
    text_encoder = CLIPTextModel(_clip_config(len(tokenizer)))
    _seeded(4)
    text_encoder_2 = _t5_encoder(len(t5))
    if guidance_embeds:  # FLUX.1-dev: resolution-dependent shift
        scheduler = FlowMatchEulerDiscreteScheduler(
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15
        )
    else:  # FLUX.1-schnell
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FluxPipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=t5,
        scheduler=scheduler,
    )


def build_flux() -> Any:
    """FLUX.1-dev: guidance-distilled (guidance is an embedding input, not CFG)."""
    return _flux(guidance_embeds=True)


def build_flux_schnell() -> Any:
    """FLUX.1-schnell: timestep-distilled, no guidance embedding (served at 4 steps)."""
    return _flux(guidance_embeds=False)


def build_pixart() -> Any:
    """PixArt-Sigma: DiT with learned sigma and a T5 encoder."""
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    t5 = t5_tokenizer(model_max_length=300)
    _seeded(1)
    transformer = PixArtTransformer2DModel(
        sample_size=8,
        num_layers=1,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        caption_channels=32,
        in_channels=4,
        cross_attention_dim=24,
        out_channels=8,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )
    _seeded(2)
    vae = _vae()
    _seeded(3)
    text_encoder = _t5_encoder(len(t5))
    return PixArtSigmaPipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=t5,
        scheduler=DPMSolverMultistepScheduler(**{**_SD_BETAS, "beta_schedule": "linear"}),
    )


def build_sana() -> Any:
    """Sana: linear-attention DiT, a deep-compression autoencoder and a Gemma 2 text encoder."""
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = gemma_tokenizer()
    _seeded(1)
    transformer = SanaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=8,
        sample_size=32,
    )
    _seeded(2)
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)),
        decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1),
        decoder_layers_per_block=(1, 1),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )
    _seeded(3)
    text_encoder = Gemma2Model(
        Gemma2Config(
            head_dim=16,
            hidden_size=8,
            intermediate_size=64,
            max_position_embeddings=8192,
            num_attention_heads=2,
            num_hidden_layers=1,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=2,
        )
    )
    return SanaPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


FAMILY_BUILDERS: dict[str, Callable[[], Any]] = {
    "tiny-sdxl": build_sdxl,
    "tiny-sd3": build_sd3,
    "tiny-flux": build_flux,
    "tiny-flux-schnell": build_flux_schnell,
    "tiny-sd2v": build_sd2v,
    "tiny-turbo": build_turbo,
    "tiny-pixart": build_pixart,
    "tiny-sana": build_sana,
}
"""Demo model name -> builder of its unsaved pipeline."""
