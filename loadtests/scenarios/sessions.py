"""Multi-turn chat sessions: every turn resends the history plus a new message, streamed.

locust -f loadtests/scenarios/sessions.py --headless -u 16 -r 4 -t 60s --turns uniform:2,8 \
    --think-time exponential:2 --system-prompt-len 200 --doc-len 300
"""

from loadtests.harness.users import OpenAISessionUser


class SessionUser(OpenAISessionUser):
    pass
