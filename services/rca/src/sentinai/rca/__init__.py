"""Root-cause analysis: a deterministic diagnosis engine, optionally refined by an LLM through litellm."""
