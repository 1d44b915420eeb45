"""The served OpenAPI document, rendered as the committed openapi.yaml."""

import yaml


def document() -> dict:
    from app.config import Settings
    from app.main import create_app

    app = create_app(Settings(database_url="sqlite://", redis_url=None), start_runner=False)
    return app.openapi()


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=100)
