"""The data-generating process of the seed post, every constant a parameter.

    C_r        ~ N(0, competition_sd^2)                     r = 1..n_regions
    adavg_r    ~ N(confounding * C_r, adspend_region_sd^2)
    T_r        ~ Poisson(months_mean) + months_min
    ad_rt      ~ N(adavg_r, adspend_sd^2)
    profit_rt  ~ N(intercept + competition_effect * C_r + beta * ad_rt, noise_sd^2)

The estimand is the within-region effect ``beta``. ``confounding = 0`` is the
control condition in which the random-intercept assumption holds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mlmbias.errors import ConfigError

_NONNEGATIVE = ("competition_sd", "adspend_region_sd", "adspend_sd", "noise_sd")
_INTEGER = ("n_regions", "months_min")


@dataclass(frozen=True)
class DGP:
    """Parameters of the seed's data-generating process (defaults from the seed)."""

    n_regions: int = 10
    competition_sd: float = 10.0
    confounding: float = 2.0
    adspend_region_sd: float = 2.0
    months_mean: float = 5.0
    months_min: int = 2
    adspend_sd: float = 5.0
    intercept: float = 8.0
    competition_effect: float = -3.0
    beta: float = 1.5
    noise_sd: float = 10.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"DGP field '{f.name}' must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"DGP field '{f.name}' must be finite, got {value!r}")
            if f.name in _INTEGER:
                if float(value) != int(value):
                    raise ConfigError(f"DGP field '{f.name}' must be an integer, got {value!r}")
                object.__setattr__(self, f.name, int(value))
            else:
                # + 0.0 turns -0.0 into 0.0: equal values are one condition (one id)
                object.__setattr__(self, f.name, float(value) + 0.0)
        if self.n_regions < 2:
            raise ConfigError(f"DGP field 'n_regions' must be >= 2, got {self.n_regions}")
        for name in _NONNEGATIVE:
            if getattr(self, name) < 0:
                raise ConfigError(f"DGP field '{name}' must be >= 0, got {getattr(self, name)}")
        if self.months_mean <= 0:
            raise ConfigError(f"DGP field 'months_mean' must be > 0, got {self.months_mean}")
        if self.months_min < 1:
            raise ConfigError(f"DGP field 'months_min' must be >= 1, got {self.months_min}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> DGP:
        """A copy with some fields changed; unknown names are a ConfigError."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ConfigError(
                f"unknown DGP field '{unknown[0]}'; allowed: {', '.join(self.field_names())}"
            )
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)

    def obs_bound(self) -> int:
        """Padding bound for the number of observations of one replication.

        N = R * months_min + Poisson(R * months_mean); the bound lies 12 Poisson
        standard deviations (plus 12) above the mean; by the exact Poisson tail
        the chance of a draw exceeding it is below 1e-26 for any R. A draw above
        it is still caught (outside jit) and raised, never truncated.
        """
        lam = self.n_regions * self.months_mean
        return int(self.n_regions * self.months_min + math.ceil(lam + 12 * math.sqrt(lam) + 12))
