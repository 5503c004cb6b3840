"""OpenAI embeddings (/v1/embeddings): request latency and throughput under batching.

locust -f loadtests/scenarios/embeddings.py --headless -u 32 -r 32 -t 30s
"""

from loadtests.harness.users import EmbeddingsUser


class EmbedUser(EmbeddingsUser):
    pass
