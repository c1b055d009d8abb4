"""Tools: `@tool`, function signatures and docstrings as JSON schemas, strict mode, structured output.

Below it: the wire models, the exceptions and the client. It knows nothing of the loop.
"""
