"""SentinAI planner."""
