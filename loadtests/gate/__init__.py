"""The pytest SLA gate (entry point ``loadtests.gate.plugin``). It runs Locust as a
subprocess and never imports locust or gevent: the pytest process must stay unpatched."""
