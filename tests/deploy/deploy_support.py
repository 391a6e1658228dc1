"""Shared by the deployment tests: the repository's paths and what each service's settings accept."""

from __future__ import annotations

import importlib
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from sentinai.common.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "collector", "detector", "predictor", "rca", "planner", "executor")
# Names the manifests set ahead of the code that reads them (detector partitions, issue 7).
PENDING_ENV = {"detector": {"SENTINAI_DETECTOR_PARTITION", "SENTINAI_DETECTOR_PARTITIONS"}}


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"sentinai.{service}.settings")
    (cls,) = (
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, ServiceSettings) and obj.__module__ == module.__name__
    )
    return cls


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable the settings class reads (aliases included), upper-cased."""
    prefix = cls.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}")
    return {n.upper() for n in names}


def accepted_env(service: str) -> set[str]:
    return env_names(settings_class(service)) | PENDING_ENV.get(service, set())


def http_port_env(service: str) -> str:
    return "SENTINAI_API_PORT" if service == "api" else f"SENTINAI_{service.upper()}_HTTP_PORT"


def default_port(service: str) -> int:
    field = "port" if service == "api" else "http_port"
    port = settings_class(service).model_fields[field].default
    assert isinstance(port, int)
    return port


def health_path(service: str) -> str:
    return "/api/health" if service == "api" else "/healthz"
