"""The HTTP client: `ChatClient`, its HTTP stacks, retries, error translation and streamed bodies.

Below it: the wire models and the exceptions. It knows nothing of tools or runs.
"""
