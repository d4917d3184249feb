"""Diffusion models and samplers on the golden model (system layer; ``docs/diffusion.md``)."""
