"""What every rendered object shares: the labels, timestamps and uids of a chain's objects, its node
and the kind of each component's workload."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

from sentinai.twin.model import STATEFUL, Component, digest

NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"


def timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uid(*parts: object) -> str:
    """A stable object uid derived from ``parts``."""
    return str(uuid.UUID(digest(*parts)[2:34]))


def node_name(chain: str) -> str:
    """The node a chain's pods are scheduled on: one per chain."""
    return f"{chain}-node-1"


def kind_of(component: Component) -> str:
    return "StatefulSet" if component in STATEFUL else "Deployment"
