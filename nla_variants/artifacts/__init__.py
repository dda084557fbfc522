"""Trained NLAs that travel: finding and loading one (a run, a sweep's best trial, an export, the
public release layout), exporting Hugging Face checkpoints with a sidecar and a model card."""
