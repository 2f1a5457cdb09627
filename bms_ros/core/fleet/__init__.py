"""Fleet analysis: bags replayed offline, per-pack trends and fault detection.

* ``cdr``: PackMeasurement in CDR, one encoded, many decoded as numpy columns;
* ``replay``: one bag through the estimator and protection cores (``replay_columns``), with
  ``rows`` (the columns as the cores read them), ``feed`` (estimator decimation), ``screen``
  (the protection screen), ``protect`` (Protection over its windows) and ``results``;
* ``detect``: self-discharge CUSUM, robust outliers and trends over a pack's bags.
"""
