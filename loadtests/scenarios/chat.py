"""OpenAI chat completions, streamed: TTFT, inter-token latency, TPOT and end-to-end.

locust -f loadtests/scenarios/chat.py --headless -u 16 -r 4 -t 60s
"""

from loadtests.harness.users import OpenAIChatUser


class ChatUser(OpenAIChatUser):
    pass
