"""SentinAI predictor."""
