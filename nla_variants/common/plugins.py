"""Plugins by entry point: the variant, teacher and metric registries each import the modules a
package names in their group, and a module that fails to import is one line naming it."""

from __future__ import annotations

from importlib.metadata import entry_points

from nla_variants.common.errors import NLAError


def load_entry_points(group: str, what: str) -> None:
    """Import every module of entry-point `group` (`what`: "variant", "teacher", "metric")."""
    for ep in entry_points(group=group):
        try:
            ep.load()
        except Exception as e:  # a broken plugin must say which one it is
            raise NLAError(
                f"{what} plugin {ep.name!r} ({ep.value}) failed to import: {e}",
                "fix or uninstall that package",
            ) from e
