"""Any HTTP/JSON endpoint, the body from a template file with {{prompt}}/{{max_tokens}}.

    locust -f loadtests/scenarios/http_json.py --host http://127.0.0.1:8000 \\
        --payload payload.json --path /v1/completions
"""

from loadtests.harness.users import HttpJsonUser


class JsonUser(HttpJsonUser):
    pass
