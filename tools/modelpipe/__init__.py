"""modelpipe: the pipeline step CLI taking a diffusion model from Hugging Face to a tested endpoint."""

__version__ = "0.1.0"
