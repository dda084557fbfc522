"""The AV and AR variants: the registry that names them, the interface they implement, the
built-ins (`av/`, `ar/`), the AV/AR pair a trained NLA is, holding a large target (LoRA by size,
frozen weights), and the contract suite a new variant runs (`testing`).

Nothing is imported here: the registry imports the built-ins by name on first lookup, and they
import the registry to register themselves."""
