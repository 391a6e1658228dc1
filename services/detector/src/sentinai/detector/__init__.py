"""SentinAI detector."""
