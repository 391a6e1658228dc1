"""SentinAI cli."""
