"""OpenAI legacy completions (/v1/completions), streamed unless --no-stream.

locust -f loadtests/scenarios/completions.py --headless -u 8 -r 8 -t 30s
"""

from loadtests.harness.users import OpenAICompletionsUser


class CompletionsUser(OpenAICompletionsUser):
    pass
