"""Recording a run: the per-request recorder (``requests.parquet``, ``run.json``) and the
monitors beside it (the load generator's CPU and event-loop lag, the rest of the machine's
CPU, the target's Prometheus metrics, whose samples ``scrapes`` writes). Both tables go to
disk in bounded parts as the run goes (``parts``)."""
