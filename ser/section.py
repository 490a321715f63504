"""The base of every params.yaml group (unknown keys are refused, values frozen), and how a validation error
is told to the user."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def describe(err: ValidationError) -> str:
    """One line per error: the key, the bad value and what is wrong (or the validator's own message)."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling against params.yaml)")
        elif e["type"] == "value_error" and not key:
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
        else:
            hint = " (quote it, e.g. '01', so YAML reads it as text)" if e["type"] == "string_type" else ""
            lines.append(f"  {key or '(top level)'}: {value!r} is invalid: {e['msg']}{hint}")
    return "\n".join(lines)

