"""Activation Reconstructors: explanation -> vector. Importing this registers the built-ins."""

from nla_variants.ar.baseline import BaselineAR, BaselineARConfig

__all__ = ["BaselineAR", "BaselineARConfig"]
