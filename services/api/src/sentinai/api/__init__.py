"""SentinAI api."""
