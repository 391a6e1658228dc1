"""SentinAI executor: the only service that writes to Kubernetes, re-checked, verified and reversible."""
