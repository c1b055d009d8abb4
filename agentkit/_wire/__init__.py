"""Wire models: the Chat Completions JSON a client sends and a server returns, as pydantic models.

The lowest layer: it imports nothing else of agentkit.
"""
