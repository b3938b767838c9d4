"""Frequentist estimators: closed forms of the group statistics, vmapped over replications.

Each method is a pure JAX function of one replication's per-region sums (see
``_linalg``), jitted and vmapped over the replication axis by
``_common.batch_method``. It returns one entry per (estimand, term): the
estimands of its ``MethodSpec`` ("beta", "contextual", "test"), the terms the
positional codes of the covariates it estimates ("x0".., "z0"..; "" for a
test). The module docstrings state each convention and the reference
(linearmodels 7.1, statsmodels MixedLM, lme4, Stata) it follows. K counts the
regressors: 1 + p + q (the constant, p covariates x, q group-level z), 1 + 2p +
q in the Mundlak models.
"""

from mlmbias.registry import MethodSpec

_P = "mlmbias.frequentist"

METHOD_SPECS: list[MethodSpec] = [
    MethodSpec(
        "pooled",
        "frequentist",
        f"{_P}.ols:pooled",
        ("beta",),
        "pooled OLS of y on 1, x, z ignoring regions, classical SE, t(N-K) interval "
        "(linearmodels PooledOLS)",
        family="pooled/between",
    ),
    MethodSpec(
        "pooled-cluster",
        "frequentist",
        f"{_P}.ols:pooled_cluster",
        ("beta",),
        "pooled OLS, CR1 SE clustered by region, t(N-K) interval",
        family="pooled/between",
    ),
    MethodSpec(
        "pooled-cr2",
        "frequentist",
        f"{_P}.few_clusters:pooled_cr2",
        ("beta",),
        "pooled OLS, CR2 (Bell-McCaffrey) SE clustered by region, Satterthwaite df t "
        "interval (R clubSandwich)",
    ),
    MethodSpec(
        "between",
        "frequentist",
        f"{_P}.ols:between",
        ("beta",),
        "OLS on region means (1, xbar, z), t(G-K) interval (linearmodels BetweenOLS)",
        family="pooled/between",
    ),
    MethodSpec(
        "fe",
        "frequentist",
        f"{_P}.within:fe",
        ("beta",),
        "fixed effects (within; z absorbed), classical SE with N-G-p df, t interval (PanelOLS)",
        family="fixed effects",
    ),
    MethodSpec(
        "fe-cluster",
        "frequentist",
        f"{_P}.within:fe_cluster",
        ("beta",),
        "fixed effects, CR1 SE clustered by region (Stata/linearmodels factor), t interval",
        family="fixed effects",
    ),
    MethodSpec(
        "fe-cr2",
        "frequentist",
        f"{_P}.few_clusters:fe_cr2",
        ("beta",),
        "fixed effects, CR2 (Bell-McCaffrey) SE clustered by region, Satterthwaite df t "
        "interval (R clubSandwich on lm with region dummies)",
    ),
    MethodSpec(
        "fe-cr3",
        "frequentist",
        f"{_P}.few_clusters:fe_cr3",
        ("beta",),
        "fixed effects, cluster jackknife (CV3) SE over regions, t(G-1) interval",
    ),
    MethodSpec(
        "re-fgls",
        "frequentist",
        f"{_P}.random_effects:re_fgls",
        ("beta",),
        "random intercepts, Swamy-Arora FGLS as linearmodels RandomEffects, t(N-K) interval",
        family="random effects",
    ),
    MethodSpec(
        "re-reml",
        "frequentist",
        f"{_P}.random_effects:re_reml",
        ("beta",),
        "random intercepts by REML (statsmodels MixedLM), lme4 vcov, z interval",
        family="random effects",
    ),
    MethodSpec(
        "re-ml",
        "frequentist",
        f"{_P}.random_effects:re_ml",
        ("beta",),
        "random intercepts by ML (statsmodels MixedLM), lme4 vcov, z interval",
        family="random effects",
    ),
    MethodSpec(
        "mundlak-fgls",
        "frequentist",
        f"{_P}.mundlak:mundlak_fgls",
        ("beta", "contextual"),
        "random intercepts + region means of x, Swamy-Arora FGLS, t(N-K) intervals",
        family="Mundlak",
    ),
    MethodSpec(
        "mundlak-reml",
        "frequentist",
        f"{_P}.mundlak:mundlak_reml",
        ("beta", "contextual"),
        "random intercepts + region means of x by REML, lme4 vcov, z intervals",
        family="Mundlak",
    ),
    MethodSpec(
        "mundlak-reml-satt",
        "frequentist",
        f"{_P}.reml_df:mundlak_reml_satt",
        ("beta", "contextual"),
        "random intercepts + region means of x by REML, lme4 vcov, Satterthwaite df t "
        "intervals (R lmerTest)",
        family="Mundlak",
    ),
    MethodSpec(
        "mundlak-reml-kr",
        "frequentist",
        f"{_P}.reml_df:mundlak_reml_kr",
        ("beta", "contextual"),
        "random intercepts + region means of x by REML, Kenward-Roger adjusted SE and df "
        "t intervals (R pbkrtest via lmerTest)",
        family="Mundlak",
    ),
    MethodSpec(
        "rs-reml",
        "frequentist",
        f"{_P}.random_slopes:rs_reml",
        ("beta",),
        "random intercept and random slope on the first covariate x0, unstructured 2x2 "
        "covariance, by REML (lme4 lmer y ~ x + z + (1 + x0 | g)), lme4 vcov, z interval",
        family="random slopes",
    ),
    MethodSpec(
        "rs-mundlak-reml",
        "frequentist",
        f"{_P}.random_slopes:rs_mundlak_reml",
        ("beta", "contextual"),
        "random intercept and random slope on x0 plus region means of x, by REML (lme4 "
        "lmer y ~ x + xbar + z + (1 + x0 | g)), lme4 vcov, z intervals",
        family="random slopes",
    ),
    MethodSpec(
        "hausman",
        "frequentist",
        f"{_P}.hausman:hausman",
        ("test",),
        "classic Hausman test FE vs RE (Stata's default), chi2(p)",
        family="tests",
    ),
    MethodSpec(
        "hausman-sigmamore",
        "frequentist",
        f"{_P}.hausman:hausman_sigmamore",
        ("test",),
        "Hausman test FE vs RE with the RE disturbance variance in both (Stata's sigmamore)",
        family="tests",
    ),
    MethodSpec(
        "hausman-robust",
        "frequentist",
        f"{_P}.hausman:hausman_robust",
        ("test",),
        "Wald test of the Mundlak terms, CR1 covariance clustered by region, chi2(p)",
        family="tests",
    ),
    MethodSpec(
        "hausman-cr2",
        "frequentist",
        f"{_P}.few_clusters:hausman_cr2",
        ("test",),
        "t test of the Mundlak term in pooled OLS y ~ x + xbar, CR2 clustered by region, "
        "Satterthwaite df (R clubSandwich; p = 1 only)",
    ),
    MethodSpec(
        "hausman-wild",
        "frequentist",
        f"{_P}.wild:hausman_wild",
        ("test",),
        "Mundlak test in pooled OLS y ~ x + xbar by the wild cluster restricted bootstrap "
        "of the CR1 statistic (Rademacher, fully enumerated when 2^G <= draws; "
        "wildboottest); options draws (999), weights (rademacher, webb)",
    ),
]
