"""The wire: the one place that touches aiohttp (transport), request signing, the
answers' codec and converter, image sniffing, credentials from the environment."""
