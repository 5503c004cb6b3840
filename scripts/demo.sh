#!/usr/bin/env bash
# The main job, from a fresh clone: install, then load-test the bundled reference server with
# streamed chat completions (16 users, 30 s, 5 s warm-up) and print the run's summary.
# Extra arguments go to Locust, e.g. `bash scripts/demo.sh -t 60s --arrival-rate 20`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/locust -f loadtests/scenarios/chat.py --headless -u 16 -r 16 -t 30s \
    --warmup 5s "$@"
