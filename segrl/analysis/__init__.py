"""Analyses that back segrl's design choices with numbers (each writes a ``results/<name>/`` table + plot).

* :mod:`segrl.analysis.credit`: how a scalar advantage dilutes per-segment credit as the
  number of segments K grows (closed form ``corr(R, r_k) = 1/sqrt(K)`` and a Monte Carlo on a
  factorised toy policy: correlation, gradient SNR and learning speed of GRPO vs SD-GRPO).
* :mod:`segrl.analysis.box_modes`: the share of a grounding run's answer boxes that are exact, loose
  (:func:`segrl.tasks.grounding.loose_box`) or neither (the Dr. Seg v12-v15 pilots, results/drseg/NOTES.md).
"""

from segrl.analysis.credit import CreditConfig, corr_closed_form, credit_table, other_share

__all__ = ["CreditConfig", "corr_closed_form", "credit_table", "other_share"]
