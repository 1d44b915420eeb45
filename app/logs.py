"""Structured JSON logs. Request and job ids ride in contextvars; keys never reach a log,
nor do personal link tokens, and no field grows past a few KiB."""

import logging
import re
import sys

import structlog

# A field longer than this keeps its head and its tail (a traceback's end names the error):
# a failed statement's SQL text can be megabytes.
MAX_FIELD = 8_000
_HEAD = 6_000
# A personal link's token identifies its contact to a landing page, like a password: the
# path of `GET /v1/links/{token}` is logged without it.
_LINK_PATH = re.compile(r"^/v1/links/[^/]+")


def loggable_path(path: str) -> str:
    return _LINK_PATH.sub("/v1/links/[token]", path)


def cut(value: str) -> str:
    if len(value) <= MAX_FIELD:
        return value
    tail = MAX_FIELD - _HEAD
    return f"{value[:_HEAD]} … [{len(value) - MAX_FIELD} characters cut] … {value[-tail:]}"


def _cut_long_fields(_logger, _method, event_dict: dict) -> dict:
    for key, value in event_dict.items():
        if isinstance(value, str) and len(value) > MAX_FIELD:
            event_dict[key] = cut(value)
    return event_dict


def setup(level: str = "INFO", json: bool = True) -> None:
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _cut_long_fields,
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str = "audience"):
    return structlog.get_logger(name)
