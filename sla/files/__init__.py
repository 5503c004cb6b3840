"""One module per file format of a run or sweep directory, reader and writer together with
one schema-version constant each:

- ``sla.files.run``: ``run.json``, ``requests.parquet`` and ``requests.parts/`` (``Run``,
  ``load_run``, ``REQUESTS_SCHEMA``, the helpers the recorder writes parts with);
- ``sla.files.server_metrics``: ``server_metrics.parquet`` and ``server_metrics.parts/``;
- ``sla.files.parts``: the part files both parquet tables are recorded in;
- ``sla.files.verdict``: ``verdict.json``;
- ``sla.files.capacity``: ``capacity.json`` of a sweep directory, as frozen dataclasses
  (``CapacityResult``; its steps in ``sla.files.capacity_step``, its other parts in
  ``sla.files.capacity_parts``);
- ``sla.files.jsonio``: atomic JSON writes, JSON objects read back, schema versions checked;
- ``sla.files.fields``: a JSON object read field by field into typed values (one-line errors).
"""
