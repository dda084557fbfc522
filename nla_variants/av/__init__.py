"""Activation Verbalizers: vector -> explanation. Importing this registers the built-ins."""

from nla_variants.av.baseline import BaselineAV, BaselineAVConfig

__all__ = ["BaselineAV", "BaselineAVConfig"]
