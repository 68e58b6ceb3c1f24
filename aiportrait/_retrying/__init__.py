"""Retrying: the retry policy and the one retry decision, the call loop, the
limiters and the shared 429 cool-down, and the library's clock."""
