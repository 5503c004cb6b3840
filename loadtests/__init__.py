"""Everything Locust: scenarios, users, open-loop scheduling and the per-request recorder."""
