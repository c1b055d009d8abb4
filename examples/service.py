"""The world clock bot as an OpenAI-compatible service.

    pip install -e ".[server,examples]"
    uvicorn examples.service:app

Any OpenAI client can then talk to the agent named `clock`; the agent runs its
time-zone tools on the server:

    curl http://127.0.0.1:8000/v1/chat/completions -H "Content-Type: application/json" \\
      -d '{"model": "clock", "messages": [{"role": "user", "content": "Time in Tokyo?"}]}'

Like `examples/clock.py`, the agent asks the endpoint in `OPENAI_BASE_URL` /
`OPENAI_API_KEY` when one is set, and runs offline on a scripted model when not.
Set `AGENTKIT_SERVE_KEYS` (comma-separated) to make clients send
`Authorization: Bearer <key>`. Without keys the service answers only to
`localhost`, `127.0.0.1` and `[::1]`; SECURITY.md says why, and what to set
before it is reachable from a network.
"""

from __future__ import annotations

import os

from agentkit.serve import create_app
from examples.clock import build_agent

_keys = [key.strip() for key in os.environ.get("AGENTKIT_SERVE_KEYS", "").split(",")]

app = create_app({"clock": build_agent()}, api_keys=[k for k in _keys if k] or None)
