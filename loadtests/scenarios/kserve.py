"""KServe V2 tensor inference (/v2/models/{model}/infer).

    locust -f loadtests/scenarios/kserve.py --headless -u 32 -r 32 -t 30s
    locust -f loadtests/scenarios/kserve.py --host http://127.0.0.1:8000 --model mlp \\
        --kserve-input INPUT0 --kserve-shape 1,256
"""

from loadtests.harness.users import KServeUser


class TensorUser(KServeUser):
    pass
