"""modelpipe: the pipeline step CLI that takes a diffusion model from Hugging Face to a served, tested endpoint."""

__version__ = "0.1.0"
