"""Payload filters: Qdrant's own ``models.Filter``, or a short string that means one.

Syntax (``ragcun search --filter``, ``filter=`` in Python): clauses joined by ``&`` (or `` and ``),
all of which must hold. Each clause is ``KEY OP VALUE``:

=====================================  ===========================================================
``metadata.team=infra``                equality (a number also matches its text: ``year=2020``)
``source!=docs/old.md``                negation
``metadata.team=infra|ops``            any of (``in``); ``!=a|b`` is none of
``ingested_at>=2026-01-01``            ranges: ``>`` ``>=`` ``<`` ``<=``; dates for ``ingested_at``,
                                       numbers for other keys
=====================================  ===========================================================

Keys: ``source``, ``doc_id``, ``title``, ``chunk``, ``ingested_at``, ``model_version`` and any
``metadata.*`` key. A bad clause is an :class:`~ragcun.errors.InvalidInputError` naming it.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from qdrant_client import models

from ragcun.errors import InvalidInputError

KEYS = ("source", "doc_id", "title", "chunk", "ingested_at", "model_version")
DATE_KEYS = ("ingested_at",)
_CLAUSE = re.compile(r"^\s*(?P<key>[A-Za-z_][\w.\-]*)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>.*?)\s*$")
_SPLIT = re.compile(r"\s*&\s*|\s+and\s+", re.IGNORECASE)
_RANGE_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def parse_filter(where: str | models.Filter | None) -> models.Filter | None:
    """``where`` as a Qdrant filter (``None`` and an empty string: no filter)."""
    if where is None or isinstance(where, models.Filter):
        return where
    if not isinstance(where, str):
        raise InvalidInputError(f"filter must be a string or a qdrant_client.models.Filter, not {type(where).__name__}")
    if not where.strip():
        return None
    must: list = []
    must_not: list = []
    for clause in _SPLIT.split(where.strip()):
        condition, negated = _clause(clause)
        (must_not if negated else must).append(condition)
    return models.Filter(must=must or None, must_not=must_not or None)


def _clause(clause: str) -> tuple[models.Condition, bool]:
    match = _CLAUSE.match(clause)
    if match is None:
        raise InvalidInputError(f"filter clause {clause!r}: expected KEY=VALUE, KEY!=VALUE, KEY=A|B or KEY>=VALUE")
    key, op, value = match["key"], match["op"], match["value"]
    check_key(key, f"filter clause {clause!r}: ")
    if value == "":
        raise InvalidInputError(f"filter clause {clause!r}: no value after {op!r}")
    if op in _RANGE_OPS:
        return _range(clause, key, _RANGE_OPS[op], value), False
    values = [v.strip() for v in value.split("|")]
    if any(not v for v in values):
        raise InvalidInputError(f"filter clause {clause!r}: an empty alternative in {value!r}")
    return _equals(key, values), op == "!="


def check_key(key: str, context: str = "") -> str:
    """``key`` if it is a payload key users may filter or index by."""
    if key not in KEYS and not (key.startswith("metadata.") and len(key) > len("metadata.")):
        raise InvalidInputError(f"{context}unknown key {key!r}; use one of {', '.join(KEYS)} or metadata.NAME")
    return key


def _equals(key: str, values: list[str]) -> models.Condition:
    """Any of ``values``; a numeric or boolean literal also matches that typed value."""
    texts = [
        models.FieldCondition(
            key=key, match=models.MatchAny(any=values) if len(values) > 1 else models.MatchValue(value=values[0])
        )
    ]
    typed: list = []
    for value in values:
        literal = _literal(value)
        if literal is not None:
            typed.append(models.FieldCondition(key=key, match=models.MatchValue(value=literal)))
    if not typed:
        return texts[0]
    return models.Filter(should=texts + typed)


def _literal(value: str) -> int | bool | None:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    return None


def _range(clause: str, key: str, bound: str, value: str) -> models.FieldCondition:
    if key in DATE_KEYS:
        try:
            moment = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(f"filter clause {clause!r}: {value!r} is not a date (YYYY-MM-DD[THH:MM])") from None
        text = moment.isoformat() if isinstance(moment, datetime) else f"{moment.isoformat()}T00:00:00"
        if (isinstance(moment, datetime) and moment.tzinfo is None) or not isinstance(moment, datetime):
            text += "Z"
        return models.FieldCondition(key=key, range=models.DatetimeRange(**{bound: text}))
    try:
        number = float(value)
    except ValueError:
        raise InvalidInputError(f"filter clause {clause!r}: {value!r} is not a number") from None
    return models.FieldCondition(key=key, range=models.Range(**{bound: number}))
