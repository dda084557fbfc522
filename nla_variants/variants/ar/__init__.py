"""Activation Reconstructors: explanation -> vector. Importing this registers the built-ins."""

from nla_variants.variants.ar.baseline import BaselineAR, BaselineARConfig
from nla_variants.variants.ar.context import ContextAR, ContextARConfig
from nla_variants.variants.ar.flowchart import FlowchartAR, FlowchartARConfig
from nla_variants.variants.ar.release import ReleaseAR, ReleaseARConfig
from nla_variants.variants.ar.small import SmallAR, SmallARConfig

__all__ = [
    "BaselineAR",
    "BaselineARConfig",
    "ContextAR",
    "ContextARConfig",
    "FlowchartAR",
    "FlowchartARConfig",
    "ReleaseAR",
    "ReleaseARConfig",
    "SmallAR",
    "SmallARConfig",
]
