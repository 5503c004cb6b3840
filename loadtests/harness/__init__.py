"""Locust glue: command-line options, the event listeners that run a slabench test, the
per-process run state (kept on Locust's ``Environment``), the user classes scenarios
subclass, master/worker record collection, ``--shape`` and the run directory's lifecycle."""
