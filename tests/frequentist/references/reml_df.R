# Reference values of the Mundlak REML methods with small-sample df, from R's
# lmerTest (Satterthwaite) and pbkrtest via lmerTest (Kenward-Roger), for the
# panels of few_clusters_panels.csv and reml_df_panels.csv (where the between
# variance is estimated at 0):
#   lmer(y ~ x.. + xbar.. (+ z0) + (1 | g), REML = TRUE)
# with xbar the region means of x. lme4's default optimiser stops at
# |change in deviance| < 1e-8 or so, which leaves the variance ratio (and so the
# df) uncertain in the fourth digit; the fits here use the same optimiser with
# tolerances at rounding level, so that the references are the exact REML
# optimum, which is what the package computes.
# Run from the repository root:
#   Rscript tests/frequentist/references/reml_df.R
# Writes reml_df_reference.csv (method, panel, estimand, term, estimate, se, df,
# p_value, theta, sigma).
suppressPackageStartupMessages(library(lmerTest))
dir <- "tests/frequentist/references"
panels <- rbind(
  read.csv(file.path(dir, "few_clusters_panels.csv")),
  read.csv(file.path(dir, "reml_df_panels.csv"))  # the boundary: s_a^2 estimated at 0
)
control <- lmerControl(
  optimizer = "nloptwrap",
  optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-15, xtol_rel = 1e-14, ftol_rel = 1e-15,
                 maxeval = 1e5)
)
rows <- list()
for (id in sort(unique(panels$panel))) {
  d <- panels[panels$panel == id, ]
  p <- d$p[1]
  q <- d$q[1]
  xs <- paste0("x", seq_len(p) - 1)
  xbars <- paste0("xbar", seq_len(p) - 1)
  for (j in seq_len(p)) d[[xbars[j]]] <- ave(d[[xs[j]]], d$g)
  zs <- if (q > 0) "z0" else character(0)
  d$g <- factor(d$g)
  form <- reformulate(c(xs, xbars, zs, "(1 | g)"), "y")
  fit <- lmer(form, data = d, REML = TRUE, control = control)
  theta <- getME(fit, "theta")[[1]]
  sigma <- sigma(fit)
  terms <- c(xs, xbars, zs)
  estimand <- c(rep("beta", p), rep("contextual", p), rep("beta", q))
  code <- c(xs, xs, zs)
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    co <- summary(fit, ddf = ddf)$coefficients
    method <- if (ddf == "Satterthwaite") "mundlak-reml-satt" else "mundlak-reml-kr"
    rows[[length(rows) + 1]] <- data.frame(
      method = method, panel = id, estimand = estimand, term = code,
      estimate = co[terms, "Estimate"], se = co[terms, "Std. Error"], df = co[terms, "df"],
      p_value = co[terms, "Pr(>|t|)"], theta = theta, sigma = sigma
    )
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(dir, "reml_df_reference.csv"), row.names = FALSE)
cat("wrote", nrow(out), "rows\n")
