"""Performance measures, tables, figures and the written report of a study."""

from mlmbias.report.measures import performance as performance
