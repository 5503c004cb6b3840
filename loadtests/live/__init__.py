"""The live view of a run while it goes: bounded per-endpoint figures fed with the rows the
run directory gets (``state``), what is shown of them (``view``), the greenlet that prints
them and stops a run early (``monitor``), and the web UI's slabench tab (``web``)."""
