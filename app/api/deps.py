from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from app.auth import AccountDep
from app.config import Settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

__all__ = ["AccountDep", "EngineDep", "SettingsDep"]
