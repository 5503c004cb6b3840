"""The measurement contract and the SLA judge (pure: pandas/numpy/yaml only)."""
