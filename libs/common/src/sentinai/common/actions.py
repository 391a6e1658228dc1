"""The closed, typed catalogue of actions. Nothing else can be proposed, approved or executed.

An LLM's advice, a REST request or an MCP call becomes an action only by validating into one of
these models; free text never does. Some kinds exist only so that a request for them can be named
and refused (the forbidden list) rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

from sentinai.common.events import Component, Severity

ActionKind = Literal[
    "scale_cpu",
    "scale_down",
    "restart_component",
    "raise_memory",
    "notify",
    "exec_debug",
    "database_drop",
    "database_delete",
    "delete_service_account",
    "delete_namespace",
]


def _kind_required(schema: dict[str, Any]) -> None:
    """``kind`` has a default in Python, but a JSON body must name it: it picks the catalogue entry."""
    required = schema.setdefault("required", [])
    if "kind" not in required:
        required.insert(0, "kind")


class _Action(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra=_kind_required,
    )

    def summary(self) -> str:
        raise NotImplementedError

    def target(self) -> str | None:
        """The component the action changes, or ``None`` for actions that change nothing."""
        return None


class ScaleCpu(_Action):
    kind: Literal["scale_cpu"] = "scale_cpu"
    component: Component
    vcpu: float = Field(gt=0, le=64)

    def summary(self) -> str:
        return f"scale {self.component} CPU to {self.vcpu:g} vCPU"

    def target(self) -> str:
        return self.component


class ScaleDown(_Action):
    kind: Literal["scale_down"] = "scale_down"
    component: Component
    vcpu: float = Field(gt=0, le=64)

    def summary(self) -> str:
        return f"scale {self.component} CPU down to {self.vcpu:g} vCPU"

    def target(self) -> str:
        return self.component


class RestartComponent(_Action):
    kind: Literal["restart_component"] = "restart_component"
    component: Component

    def summary(self) -> str:
        return f"restart {self.component}"

    def target(self) -> str:
        return self.component


class RaiseMemory(_Action):
    kind: Literal["raise_memory"] = "raise_memory"
    component: Component
    memory_gib: float = Field(gt=0, le=512)

    def summary(self) -> str:
        return f"raise {self.component} memory limit to {self.memory_gib:g} GiB"

    def target(self) -> str:
        return self.component


class Notify(_Action):
    kind: Literal["notify"] = "notify"
    severity: Severity
    text: str = Field(min_length=1, max_length=2000)

    def summary(self) -> str:
        return f"notify operators ({self.severity}): {self.text}"


class ExecDebug(_Action):
    kind: Literal["exec_debug"] = "exec_debug"
    component: Component
    command: str = Field(min_length=1, max_length=500)

    def summary(self) -> str:
        return f"exec into {self.component}: {self.command}"

    def target(self) -> str:
        return self.component


class DatabaseDrop(_Action):
    kind: Literal["database_drop"] = "database_drop"
    component: Component

    def summary(self) -> str:
        return f"DROP the {self.component} database"


class DatabaseDelete(_Action):
    kind: Literal["database_delete"] = "database_delete"
    component: Component

    def summary(self) -> str:
        return f"DELETE data of the {self.component} database"


class DeleteServiceAccount(_Action):
    kind: Literal["delete_service_account"] = "delete_service_account"
    name: str = Field(min_length=1, max_length=253)

    def summary(self) -> str:
        return f"delete service account {self.name}"


class DeleteNamespace(_Action):
    kind: Literal["delete_namespace"] = "delete_namespace"
    namespace: str = Field(min_length=1, max_length=63)

    def summary(self) -> str:
        return f"delete namespace {self.namespace}"


Action = Annotated[
    ScaleCpu
    | ScaleDown
    | RestartComponent
    | RaiseMemory
    | Notify
    | ExecDebug
    | DatabaseDrop
    | DatabaseDelete
    | DeleteServiceAccount
    | DeleteNamespace,
    Field(discriminator="kind"),
]
ACTION_ADAPTER: Final[TypeAdapter[Action]] = TypeAdapter(Action)

# Kinds that change the cluster (the executor's business); the rest only inform.
CLUSTER_WRITES: Final = frozenset(
    {"scale_cpu", "scale_down", "restart_component", "raise_memory", "exec_debug"}
)


def parse_action(data: object) -> Action:
    """Validate anything (a dict from JSON, an LLM's parsed output) into a catalogue action."""
    return ACTION_ADAPTER.validate_python(data)
