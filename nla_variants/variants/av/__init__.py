"""Activation Verbalizers: vector -> explanation. Importing this registers the built-ins."""

from nla_variants.variants.av.baseline import BaselineAV, BaselineAVConfig
from nla_variants.variants.av.multitoken import MultiTokenAV, MultiTokenAVConfig
from nla_variants.variants.av.structured import StructuredAV, StructuredAVConfig

__all__ = [
    "BaselineAV",
    "BaselineAVConfig",
    "MultiTokenAV",
    "MultiTokenAVConfig",
    "StructuredAV",
    "StructuredAVConfig",
]
