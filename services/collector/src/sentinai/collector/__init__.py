"""SentinAI collector."""
