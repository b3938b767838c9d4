"""``DGP``: the seed scenario under its historical name (see mlmbias.scenarios.seed)."""

from mlmbias.scenarios.seed import Seed as DGP

__all__ = ["DGP"]
