"""Recording a run: the per-request recorder (``requests.parquet``, ``run.json``) and the
monitors beside it (load-generator CPU, the target's Prometheus metrics, whose samples
``scrapes`` writes). Both tables go to disk in bounded parts as the run goes (``parts``)."""
