"""The HTTP client and its timestamps: the anchored clock, the transport, SSE and OpenAI
stream parsing, request payloads per protocol, and the execution of one measured request."""
