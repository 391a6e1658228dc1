"""Chat and pager notifications: Slack, Discord, PagerDuty and signed webhooks, fed from the bus."""

from sentinai.api.notify.bus import SERVICE, Notifications, subscribe
from sentinai.api.notify.config import NotifyConfig, NotifyConfigError, load_config

__all__ = ["SERVICE", "Notifications", "NotifyConfig", "NotifyConfigError", "load_config", "subscribe"]
