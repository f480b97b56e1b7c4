"""Machine-learning support for the ML UDFs (wind_turbine, weld, model) and `kapudf train`.

Nothing here is imported by `kapudf run NAME` before init: numpy, scikit-learn, catboost and
pandas are imported inside the functions that need them, so Info stays fast.

- `manifest`: where the shipped models live, the manifest, sha256 verification.
- `loading`: loading a shipped or a user's model safely (`LoadedModel`).
- `inputs`: turning points into a feature matrix by field name, the not-evaluated policy.
- `data`: the bundled training data (`udfcollection/data/`) and data hashes.
- `train_wind`, `train_weld`: the reproducible training recipes behind `kapudf train`.
"""
