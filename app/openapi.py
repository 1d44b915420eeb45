"""The served OpenAPI document, rendered as the committed openapi.yaml."""

import json
from typing import Any

import yaml
from fastapi import FastAPI

REF = "#/components/schemas/"


def document() -> dict:
    from app.config import Settings
    from app.main import create_app

    app = create_app(Settings(database_url="sqlite://", redis_url=None), start_runner=False)
    return app.openapi()


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=100)


def streamed(description: str, *media_types: str) -> dict:
    """The 200 of an operation that streams a file (CSV, NDJSON): typed as a string, so
    that a generated client reads it as text (not `unknown`). Not for server-sent events,
    whose events' data a schema would describe."""
    content = {media: {"schema": {"type": "string"}} for media in media_types}
    return {200: {"description": description, "content": content}}


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF):
                found.add(ref.removeprefix(REF))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def request_schemas(schema: dict) -> set[str]:
    """The component schemas a request body may contain (directly or through others)."""
    components = schema.get("components", {}).get("schemas", {})
    bodies = [
        operation["requestBody"]
        for operations in schema["paths"].values()
        for operation in operations.values()
        if "requestBody" in operation
    ]
    todo, seen = _refs(bodies), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in components:
            continue
        seen.add(name)
        todo |= _refs(components[name])
    return seen


def defaults_described(app: FastAPI) -> None:
    """A request field with a default is optional: say its default in words, not as JSON
    Schema's `default`, which TypeScript generators (openapi-typescript, with its default
    flags) read as "always present" and so make the field required: a plain
    `{type: "tag", tags: ["VIP"]}` would not compile. Responses keep theirs."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.get("components", {}).get("schemas", {})
        for name, component in components.items():
            if name.startswith("Body_") and "description" not in component:
                # FastAPI's model of a form's fields, named for its operation.
                operation = name.removeprefix("Body_")
                component["description"] = f"The form fields of `{operation}`."
        for name in sorted(request_schemas(schema)):
            for prop in components[name].get("properties", {}).values():
                if "default" in prop:
                    said = f"Default: `{json.dumps(prop.pop('default'))}`."
                    text = prop.get("description", "").rstrip()
                    if text and not text.endswith((".", ")", ":")):
                        text += "."
                    prop["description"] = f"{text} {said}".strip()
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
