"""Recording a run: the per-request recorder (``requests.parquet``, ``run.json``) and the
monitors beside it (load-generator CPU, the target's Prometheus metrics)."""
