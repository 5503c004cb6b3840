"""What is sent and when: prompt datasets (synthetic, JSONL, ShareGPT), open-loop arrival
schedules and closed-loop shape specs. Pure: no Locust, no gevent."""
