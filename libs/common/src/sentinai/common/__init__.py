"""Contracts shared by every SentinAI service: events, subjects, streams, settings, logging, state."""
