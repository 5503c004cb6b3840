"""A weighted mix: streamed chat, embeddings and KServe tensors against one server.

locust -f loadtests/scenarios/mixed.py --headless -u 24 -r 8 -t 60s
"""

from loadtests.harness.users import EmbeddingsUser, KServeUser, OpenAIChatUser


class ChatUser(OpenAIChatUser):
    weight = 6


class EmbedUser(EmbeddingsUser):
    weight = 3


class TensorUser(KServeUser):
    weight = 1
