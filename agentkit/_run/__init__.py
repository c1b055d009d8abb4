"""The run: the loop, its two steps (`model_step`, `tool_step`), its rules, events and streamed runs.

Below it: tools, the client, the exceptions and the wire models. It never sees `Agent`.
"""
