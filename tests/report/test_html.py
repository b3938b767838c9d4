"""report.html from report.md's text: the markup the report writes, images embedded."""

import base64

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mlmbias.report.html import to_html  # noqa: E402

TEXT = """# Report: tiny

> **Incomplete study: 2 of 8 batches missing**: `a.parquet (never written)`.
>
> The tables cover only the batches present.

Produced by `mlmbias report` from `x` (a <b>tag</b> & more).

## Design (ADEMP)

**Methods.**
- `fe` (frequentist): fixed effects
- `re-reml` (frequentist): random intercepts
  by REML

**confounding = 2**

| method | 10 | 50 |
|---|---|---|
| fe | 0.012 (0.003) | – |
| re-reml | -1.200 (0.010) | 0.5 |

![Bias with +-2 MCSE bars](figures/05_bias.png)

*Bias with +-2 MCSE bars*

_not drawn (the study has none of the methods it needs)._
"""


def test_markup_tables_and_embedded_images(tmp_path):
    (tmp_path / "figures").mkdir()
    fig, ax = plt.subplots(figsize=(1, 1))
    fig.savefig(tmp_path / "figures" / "05_bias.png")
    plt.close(fig)
    page = to_html(TEXT, tmp_path, "Report: tiny")
    assert page.startswith("<!DOCTYPE html>") and "<title>Report: tiny</title>" in page
    assert "<h1>Report: tiny</h1>" in page and "<h2>Design (ADEMP)</h2>" in page
    assert "<blockquote><p><strong>Incomplete study: 2 of 8 batches missing</strong>" in page
    assert page.count("<blockquote>") == 1 and "<p>The tables cover only" in page
    assert "a &lt;b&gt;tag&lt;/b&gt; &amp; more" in page  # text is escaped
    assert "<code>mlmbias report</code>" in page
    assert "<li><code>re-reml</code> (frequentist): random intercepts by REML</li>" in page
    assert '<table class="sortable">' in page and "<th>method</th><th>10</th>" in page
    assert "<td>0.012 (0.003)</td><td>–</td>" in page
    # the image is embedded, its caption given once, as the figure's caption
    data = (tmp_path / "figures" / "05_bias.png").read_bytes()
    assert f'src="data:image/png;base64,{base64.b64encode(data).decode()}"' in page
    assert page.count("Bias with +-2 MCSE bars") == 2  # alt and figcaption
    assert "figures/05_bias.png" not in page
    assert "<p><em>not drawn (the study has none of the methods it needs).</em></p>" in page
    assert "http" not in page  # nothing to fetch
