"""SLA-constrained capacity search, the orchestration layer: its options, the steps it runs
as Locust subprocesses, and the search loop (the policy itself is ``sla.search``)."""
