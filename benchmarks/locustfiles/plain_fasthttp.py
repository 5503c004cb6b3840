"""Baseline for benchmarks/locust_overhead.py: Locust's plain FastHttpUser sending the same
chat request, non-streamed, with nothing recorded beyond Locust's own statistics."""

import json

from locust import FastHttpUser, constant, task

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}],
                   "max_tokens": 16})  # fmt: skip


class PlainUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def chat(self) -> None:
        self.client.post("/v1/chat/completions", data=BODY,
                         headers={"Content-Type": "application/json"})  # fmt: skip
