"""How each method is drawn: one colour per family, one marker and line style per member.

A method's family is its ``MethodSpec.family`` (:data:`mlmbias.registry.FAMILIES`);
its member index is its position among the registered methods of that family,
so a method is drawn alike in every figure of every study, whichever other
methods the study has. A name the registry does not know (a method of a store
whose plugin is not imported) gets a family inferred from its name and a member
index after the registered ones, in sorted order.

A label "method (term)" (a method with several terms, see
:func:`mlmbias.report.layout.label_terms`) is drawn in the method's colour and
marker with a line style per term.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlmbias.registry import FAMILIES, infer_family
from mlmbias.registry import methods as registered

# Colour-blind-safe where it matters (Okabe-Ito), one per family, legend order.
FAMILY_COLOURS = {
    "pooled/between": "#7f7f7f",  # grey
    "fixed effects": "#0072B2",  # blue
    "random effects": "#D55E00",  # vermillion
    "Mundlak": "#009E73",  # green
    "random slopes": "#882255",  # wine (Tol)
    "tests": "#CC79A7",  # purple-pink
    "Bayesian": "#E69F00",  # orange
    "other": "#56B4E9",  # sky blue
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<")
LINESTYLES: tuple[Any, ...] = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class Style:
    family: str
    colour: str
    marker: str
    linestyle: Any

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``ax.plot``/``ax.errorbar``."""
        return {"color": self.colour, "marker": self.marker, "linestyle": self.linestyle}


def split_label(label: str) -> tuple[str, str]:
    """("method", "term") of a label "method (term)"; ("method", "") otherwise."""
    if label.endswith(")") and " (" in label:
        method, _, term = label[:-1].partition(" (")
        return method, term
    return label, ""


def family(method: str) -> str:
    spec = registered().get(method)
    if spec is not None:
        return spec.family
    return infer_family(method, "frequentist", ())


def _members(fam: str, extra: Iterable[str] = ()) -> list[str]:
    known = [n for n, s in registered().items() if s.family == fam]
    return known + sorted({m for m in extra if m not in known and family(m) == fam})


def style(label: str, present: Iterable[str] = ()) -> Style:
    """The style of a method (or "method (term)" label); ``present`` names the
    other methods of the figure, which only matters for unregistered names."""
    method, term = split_label(label)
    fam = family(method)
    members = _members(fam, [split_label(p)[0] for p in present] + [method])
    i = members.index(method)
    linestyle = LINESTYLES[i % len(LINESTYLES)]
    if term:
        terms = sorted({split_label(p)[1] for p in present if split_label(p)[0] == method} | {term})
        linestyle = LINESTYLES[terms.index(term) % len(LINESTYLES)]
    return Style(fam, FAMILY_COLOURS[fam], MARKERS[i % len(MARKERS)], linestyle)


def styles(labels: Iterable[str]) -> dict[str, Style]:
    labels = list(dict.fromkeys(labels))
    return {lab: style(lab, labels) for lab in labels}


def ordered(labels: Iterable[str]) -> list[str]:
    """Labels by family (FAMILIES order), then registry order within the family,
    then term: the legend order of every figure."""
    labels = list(dict.fromkeys(labels))
    order = {name: i for i, name in enumerate(registered())}

    def key(label: str) -> tuple:
        method, term = split_label(label)
        return (FAMILIES.index(family(method)), order.get(method, len(order)), method, term)

    return sorted(labels, key=key)
