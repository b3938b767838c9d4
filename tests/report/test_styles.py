"""Method families and the style of each method: one colour per family, one marker
and line style per member, the same in every figure."""

import pytest

import mlmbias
from mlmbias.errors import ConfigError
from mlmbias.registry import FAMILIES, MethodSpec, infer_family, methods, unregister
from mlmbias.report import styles

BUILT_IN = {
    "pooled/between": ["pooled", "pooled-cluster", "between"],
    "fixed effects": ["fe", "fe-cluster"],
    "random effects": ["re-fgls", "re-reml", "re-ml"],
    "Mundlak": ["mundlak-fgls", "mundlak-reml"],
    "tests": ["hausman", "hausman-sigmamore", "hausman-robust"],
    "Bayesian": ["bayes-pooled", "bayes-fe", "bayes-re", "bayes-mundlak", "bayes-rewb"],
}


def test_every_built_in_method_has_its_family():
    for family, names in BUILT_IN.items():
        for name in names:
            assert methods()[name].family == family, name
    assert all(spec.family in FAMILIES for spec in methods().values())


@pytest.mark.parametrize(
    ("name", "kind", "estimands", "family"),
    [
        ("fe-cr2", "frequentist", ("beta",), "fixed effects"),
        ("fe-cr3", "frequentist", ("beta",), "fixed effects"),
        ("pooled-cr2", "frequentist", ("beta",), "pooled/between"),
        ("hausman-cr2", "frequentist", ("test",), "tests"),
        ("hausman-wild", "frequentist", ("test",), "tests"),
        ("mundlak-reml-satt", "frequentist", ("beta", "contextual"), "Mundlak"),
        ("mundlak-reml-kr", "frequentist", ("beta", "contextual"), "Mundlak"),
        ("re-new", "frequentist", ("beta",), "random effects"),
        ("my-sampler", "bayes", ("beta",), "Bayesian"),
        ("my-test", "frequentist", ("test",), "tests"),
        ("my-within", "frequentist", ("beta",), "other"),
    ],
)
def test_a_method_without_a_family_gets_one_inferred(name, kind, estimands, family):
    assert infer_family(name, kind, estimands) == family
    # positional construction, as before families existed, still works
    assert MethodSpec(name, kind, "m:f", estimands, "").family == family
    assert MethodSpec(name, kind, "m:f", estimands, "", "Mundlak").family == "Mundlak"


def test_register_method_takes_a_family():
    def fit(batch, level, options):
        return {}

    try:
        assert mlmbias.register_method("my-est", fit, estimands=["beta"]).family == "other"
        unregister("my-est")
        spec = mlmbias.register_method("my-est", fit, estimands=["beta"], family="fixed effects")
        assert spec.family == "fixed effects"
        assert styles.style("my-est").colour == styles.FAMILY_COLOURS["fixed effects"]
        with pytest.raises(ConfigError, match="family must be one of"):
            mlmbias.register_method("my-bad", fit, estimands=["beta"], family="fixed")
    finally:
        unregister("my-est")


def test_one_colour_per_family_one_marker_and_line_per_member():
    look = styles.styles(methods())
    colours = {}
    for st in look.values():
        colours.setdefault(st.family, set()).add(st.colour)
    assert all(len(c) == 1 for c in colours.values())  # one colour per family
    assert len({c.pop() for c in colours.values()}) == len(colours)  # distinct families
    for family in colours:
        members = [(st.marker, st.linestyle) for st in look.values() if st.family == family]
        assert len(set(members)) == len(members), family
    # the example: these pairs were drawn alike with matplotlib's ten colours
    assert look["bayes-fe"] != look["re-fgls"] and look["bayes-re"] != look["re-reml"]


def test_a_style_does_not_depend_on_the_other_methods_of_the_figure():
    full = styles.styles(methods())
    for subset in (["re-reml"], ["re-ml", "fe"], ["bayes-rewb", "hausman-robust", "pooled"]):
        for name, st in styles.styles(subset).items():
            assert st == full[name]


def test_terms_and_unknown_names():
    a, b = (
        styles.style("mundlak-reml (x1)", ["mundlak-reml (x2)"]),
        styles.style("mundlak-reml (x2)", ["mundlak-reml (x1)"]),
    )
    base = styles.style("mundlak-reml")
    assert (a.colour, a.marker) == (b.colour, b.marker) == (base.colour, base.marker)
    assert a.linestyle != b.linestyle
    assert styles.style("bayes-re (flag)").marker == styles.style("bayes-re").marker
    assert styles.style("fe-unregistered").colour == styles.FAMILY_COLOURS["fixed effects"]
    assert styles.style("nobody-knows").family == "other"


def test_legend_order_is_by_family_then_registry():
    assert styles.ordered(["bayes-re", "my-thing", "hausman", "re-reml", "fe", "pooled"]) == [
        "pooled",
        "fe",
        "re-reml",
        "hausman",
        "bayes-re",
        "my-thing",
    ]
