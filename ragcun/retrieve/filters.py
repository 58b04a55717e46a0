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

Where a key has a payload index (``ragcun collections index``), an equality matches the index's type
only: ``bucket=7`` on an ``integer`` index is the integer 7, not also the text "7". The engine can then
plan the filter with the index; a text-or-number alternative would make it read every point's payload
(at 100,000 points, 10x slower for a filter matching 1% of them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime

from qdrant_client import models

from ragcun.errors import InvalidInputError

KEYS = ("source", "doc_id", "title", "chunk", "ingested_at", "model_version")
DATE_KEYS = ("ingested_at",)
_CLAUSE = re.compile(r"^\s*(?P<key>[A-Za-z_][\w.\-]*)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>.*?)\s*$")
_SPLIT = re.compile(r"\s*&\s*|\s+and\s+", re.IGNORECASE)
_RANGE_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def parse_filter(where: str | models.Filter | None, indexes: Mapping[str, str] | None = None) -> models.Filter | None:
    """``where`` as a Qdrant filter (``None`` and an empty string: no filter).

    ``indexes``: the collection's payload indexes (``{key: schema}``), whose types equalities then follow.
    """
    if where is None or isinstance(where, models.Filter):
        return where
    if not isinstance(where, str):
        raise InvalidInputError(f"filter must be a string or a qdrant_client.models.Filter, not {type(where).__name__}")
    if not where.strip():
        return None
    must: list = []
    must_not: list = []
    for clause in _SPLIT.split(where.strip()):
        condition, negated = _clause(clause, indexes or {})
        (must_not if negated else must).append(condition)
    return models.Filter(must=must or None, must_not=must_not or None)


def _clause(clause: str, indexes: Mapping[str, str]) -> tuple[models.Condition, bool]:
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
    return _equals(clause, key, values, indexes.get(key)), op == "!="


def check_key(key: str, context: str = "") -> str:
    """``key`` if it is a payload key users may filter or index by."""
    if key not in KEYS and not (key.startswith("metadata.") and len(key) > len("metadata.")):
        raise InvalidInputError(f"{context}unknown key {key!r}; use one of {', '.join(KEYS)} or metadata.NAME")
    return key


def _equals(clause: str, key: str, values: list[str], schema: str | None = None) -> models.Condition:
    """Any of ``values``; a numeric or boolean literal also matches that typed value, unless ``key``'s payload
    index (``schema``) says which one type the field holds."""
    if schema in ("integer", "bool"):
        literals = [_literal(v) for v in values]
        wanted = int if schema == "integer" else bool
        if any(type(literal) is not wanted for literal in literals):
            raise InvalidInputError(f"filter clause {clause!r}: {key!r} is indexed as {schema}; use {schema} values")
        return _match(key, literals)
    texts = _match(key, values)
    typed = [_match(key, [literal]) for literal in map(_literal, values) if literal is not None]
    if not typed or schema == "keyword":
        return texts
    return models.Filter(should=[texts, *typed])


def _match(key: str, values: list) -> models.FieldCondition:
    match = models.MatchAny(any=values) if len(values) > 1 else models.MatchValue(value=values[0])
    return models.FieldCondition(key=key, match=match)


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
