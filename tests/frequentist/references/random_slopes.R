# Reference values of the random-slope REML methods from lme4, for the panels of
# random_slopes_panels.csv:
#   rs-reml:          lmer(y ~ x.. (+ z0) + (1 + x0 | g), REML = TRUE)
#   rs-mundlak-reml:  lmer(y ~ x.. + xbar.. (+ z0) + (1 + x0 | g), REML = TRUE)
# with xbar the region means of x. The optimiser runs with tolerances at rounding
# level (as reml_df.R), so that the references are the exact REML optimum, which
# is what the package computes; lme4's checks of the gradient and of singular fits
# only warn and are silenced.
# Run from the repository root:
#   Rscript tests/frequentist/references/random_slopes.R
# Writes random_slopes_reference.csv (method, panel, estimand, term, estimate, se,
# sigma, sigma_a, sigma_b, rho_ab, loglik, theta1, theta2, theta3, singular).
suppressPackageStartupMessages(library(lme4))
dir <- "tests/frequentist/references"
panels <- read.csv(file.path(dir, "random_slopes_panels.csv"))
control <- lmerControl(
  optimizer = "nloptwrap",
  optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-15, xtol_rel = 1e-14, ftol_rel = 1e-15,
                 maxeval = 1e5),
  check.conv.singular = "ignore", check.conv.grad = "ignore"
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
  for (method in c("rs-reml", "rs-mundlak-reml")) {
    mundlak <- method == "rs-mundlak-reml"
    terms <- c(xs, if (mundlak) xbars, zs)
    form <- reformulate(c(terms, "(1 + x0 | g)"), "y")
    fit <- lmer(form, data = d, REML = TRUE, control = control)
    vc <- as.data.frame(VarCorr(fit))
    sds <- attr(VarCorr(fit)$g, "stddev")
    corr <- attr(VarCorr(fit)$g, "correlation")[1, 2]
    theta <- getME(fit, "theta")
    co <- summary(fit)$coefficients
    estimand <- c(rep("beta", p), if (mundlak) rep("contextual", p), rep("beta", q))
    code <- c(xs, if (mundlak) xs, zs)
    rows[[length(rows) + 1]] <- data.frame(
      method = method, panel = id, estimand = estimand, term = code,
      estimate = co[terms, "Estimate"], se = co[terms, "Std. Error"],
      sigma = sigma(fit), sigma_a = sds[[1]], sigma_b = sds[[2]], rho_ab = corr,
      loglik = as.numeric(logLik(fit)), theta1 = theta[[1]], theta2 = theta[[2]],
      theta3 = theta[[3]], singular = isSingular(fit)
    )
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(dir, "random_slopes_reference.csv"), row.names = FALSE)
cat("wrote", nrow(out), "rows\n")
