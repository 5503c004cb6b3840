"""Everything Locust: the load generator, in subpackages by concern.

    harness/         Locust glue: options, event listeners, run state, user classes,
                     distributed record collection, load shapes, the run directory
    client/          the HTTP client and its timestamps: transport, SSE and OpenAI stream
                     parsing, request payloads per protocol, one measured request
    workloads/       what is sent and when: prompt datasets, arrival schedules, shape specs
    recording/       the per-request recorder (requests.parquet, run.json) and monitors
    capacity/        SLA-constrained capacity search: the orchestration of its steps
    gate/            the pytest plugin (SLA gates in CI); it runs Locust as a subprocess
    scenarios/       the locustfiles (``locust -f loadtests/scenarios/chat.py``)
    bundled_server   starts the bundled reference server as a subprocess (no Locust)
    errors           the user errors of the load generator

Only ``harness``, ``client``, ``recording`` and ``capacity`` import gevent/locust; ``gate``,
``workloads`` and ``bundled_server`` never do, so the pytest process stays unpatched.
"""
