# Reference values of the few-cluster methods, from R's clubSandwich (CR2 with
# Satterthwaite df) and a plain leave-one-region-out loop (the cluster
# jackknife, CV3), for the panels of few_clusters_panels.csv.
# Run from the repository root:
#   Rscript tests/frequentist/references/few_clusters.R
# Writes few_clusters_reference.csv (method, panel, term, estimate, se, df, p_value).
suppressPackageStartupMessages(library(clubSandwich))
dir <- "tests/frequentist/references"
panels <- read.csv(file.path(dir, "few_clusters_panels.csv"))
rows <- list()
add <- function(method, panel, term, estimate, se, df, p_value) {
  rows[[length(rows) + 1]] <<- data.frame(
    method = method, panel = panel, term = term, estimate = estimate, se = se, df = df,
    p_value = p_value
  )
}
for (id in sort(unique(panels$panel))) {
  d <- panels[panels$panel == id, ]
  p <- d$p[1]
  q <- d$q[1]
  xs <- paste0("x", seq_len(p) - 1)
  zs <- if (q > 0) "z0" else character(0)
  d$g <- factor(d$g)
  # fe-cr2: lm with region dummies
  fe <- lm(reformulate(c(xs, "g"), "y"), data = d)
  ct <- coef_test(fe, vcov = "CR2", cluster = d$g, test = "Satterthwaite", coefs = xs)
  for (j in seq_along(xs)) {
    add("fe-cr2", id, xs[j], ct$beta[j], ct$SE[j], ct$df_Satt[j], ct$p_Satt[j])
  }
  # pooled-cr2: lm(y ~ x + z)
  po <- lm(reformulate(c(xs, zs), "y"), data = d)
  terms <- c(xs, zs)
  ct <- coef_test(po, vcov = "CR2", cluster = d$g, test = "Satterthwaite", coefs = terms)
  for (j in seq_along(terms)) {
    add("pooled-cr2", id, terms[j], ct$beta[j], ct$SE[j], ct$df_Satt[j], ct$p_Satt[j])
  }
  # hausman-cr2 (one Mundlak term): lm(y ~ x + xbar + z), t test of xbar
  if (p == 1) {
    d$xbar0 <- ave(d$x0, d$g)
    mu <- lm(reformulate(c("x0", "xbar0", zs), "y"), data = d)
    ct <- coef_test(mu, vcov = "CR2", cluster = d$g, test = "Satterthwaite", coefs = "xbar0")
    add("hausman-cr2", id, "", ct$beta / ct$SE, NA, ct$df_Satt, ct$p_Satt)
  }
  # fe-cr3: (G - 1)/G sum_g (b_(-g) - b)^2 over the regions, t(G - 1)
  b <- coef(fe)[xs]
  groups <- levels(d$g)
  jack <- t(sapply(groups, function(h) {
    dd <- droplevels(d[d$g != h, ])
    coef(lm(reformulate(c(xs, "g"), "y"), data = dd))[xs]
  }))
  if (p == 1) jack <- t(jack)
  G <- length(groups)
  for (j in seq_along(xs)) {
    se <- sqrt((G - 1) / G * sum((jack[, j] - b[j])^2))
    add("fe-cr3", id, xs[j], b[j], se, G - 1, 2 * pt(-abs(b[j] / se), G - 1))
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(dir, "few_clusters_reference.csv"), row.names = FALSE)
cat("wrote", nrow(out), "rows\n")
