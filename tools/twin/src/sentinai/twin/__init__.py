"""SentinAI twin."""
