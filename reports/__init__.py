"""The self-contained HTML report and CI outputs (JUnit XML, markdown summary)."""
