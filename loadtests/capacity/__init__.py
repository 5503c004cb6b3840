"""SLA-constrained capacity search, the orchestration layer: its options, the steps it runs
as Locust subprocesses, how a step is judged, what the search prints, how it ends, and the
search loop (the policy itself is ``sla.search``)."""
