#!/usr/bin/env bash
# Create .venv and install slabench with the reference server and test tools.
# The CPU build of torch goes in first: a plain `torch` requirement would pull a multi-GB
# CUDA build. Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --disable-pip-version-check --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    pip install -q --disable-pip-version-check "torch==${TORCH_VERSION}"
fi
pip install -q --disable-pip-version-check -e ".[server,test]"
.venv/bin/python -c "from importlib.metadata import version as v; print('installed: torch', v('torch'), '| aiohttp', v('aiohttp'), '| locust', v('locust'))"
# `locust --help` runs before any locustfile is imported; this start-up hook lets it list
# slabench's options too (it does nothing in any other process).
SITE=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# Only `locust ... --help` imports anything; every other interpreter start pays one argv check.
cat > "$SITE/slabench_locust_help.pth" <<'PTH'
import sys; ("--help" in sys.orig_argv or "-h" in sys.orig_argv) and "locust" in " ".join(sys.orig_argv[:3]) and __import__("loadtests.harness.help", fromlist=["install"]).install()
PTH
