"""nla_variants: an ablation platform for Natural Language Autoencoders."""

__version__ = "0.1.0"
