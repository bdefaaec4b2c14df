"""Talking to upstream backends: sessions, attempts and retries, and relaying the answer."""
