"""The check pass: a parsed spec (spec.py) → the checked tree (tree.py).

Owns every 422 a selection can earn after parsing: operators that do not apply to the
field, operands of the wrong shape or type, 'to' before 'from', and saved segments —
unknown, in a cycle, or nested too deep — each at its path in the request. Every problem
is collected, then raised together. Saved segments come from a SegmentSource (the database
in the service, a dict in tests); each is checked once however often it is referred to.
The names a selection uses (its segments' included) are looked up together at the end, one
query a kind; the tree is then given their ids (Bind), so compiling needs no lookup.
"""

import difflib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from app.errors import Invalid, pydantic_details
from app.names import name_key
from app.selection import spec as s
from app.selection import tree
from app.selection.operators import OPERATORS, Kind, OperandError, Operator, operators_for
from app.selection.visitor import Visitor

MAX_SEGMENT_DEPTH = 16
# What one request may expand to, saved segments counted at every use: conditions, and
# values in lists (`in`, `between`, names of selectors). Checked as it is counted, so a
# segment used a million times over is refused in milliseconds, before anything is built.
MAX_EXPANDED_NODES = 10_000
MAX_EXPANDED_VALUES = 20_000
# Unknown names a request gets "did you mean" suggestions for (the others: a plain "no tag
# named …"); each costs a fuzzy search through up to 10,000 existing names.
MAX_OFFERS = 20

# A saved segment's stored selection (JSON) by its name key; None when there is none.
SegmentSource = Callable[[str], Any]
NameKind = Literal["tag", "group", "funnel", "stage", "mailing"]


class NameSource(Protocol):
    """What exists in the account. Keys are name keys (mailings: ids; stages: (funnel key,
    stage key) pairs)."""

    def existing(self, kind: NameKind, keys: Collection) -> Mapping:
        """The id of each of `keys` that exists."""
        ...

    def names(self, kind: NameKind, funnel: str | None = None) -> list[str]:
        """Names to offer instead of an unknown one (a funnel's stages for "stage")."""
        ...


def check_selection(
    selection: s.Selection,
    segments: SegmentSource,
    names: NameSource | None = None,
    *,
    prefix: str = "",
    saving: str = "",
) -> tree.Selection:
    """The checked tree of a parsed selection, or Invalid with every problem. `names`:
    what exists in the account (None: names are not checked); `saving`: the name key of
    the segment this selection is being saved as (it may not refer to itself)."""
    at = Checking(segments, names, saving=saving)
    body = at.body(selection, prefix)
    at.finish()
    if names is not None:
        body = Bind(at.references.ids).body(body)
    return tree.Selection(body, selection.deleted, selection.as_of)


def check_condition(
    condition: Any, segments: SegmentSource, path: str, names: NameSource | None = None
) -> tree.Node:
    """The checked tree of a parsed condition (a rule's), or Invalid."""
    at = Checking(segments, names)
    node = at.condition(condition, path)
    at.finish()
    return node if names is None else Bind(at.references.ids).visit(node)


def parse_selection(data: Any, prefix: str = "selection") -> s.Selection:
    """Parse stored or raw JSON into a Selection; errors as Invalid with paths."""
    try:
        return s.Selection.model_validate(data)
    except ValidationError as exc:
        details = pydantic_details(exc.errors(), prefix=prefix)
        raise Invalid(f"{details[0]['path']}: {details[0]['message']}", details=details) from None


class Checking:
    """One run of the check pass: the errors found so far and the segments checked."""

    def __init__(self, segments: SegmentSource, names: NameSource | None, *, saving: str = ""):
        self.source = segments
        self.references = References(names)
        self.errors: list[dict[str, str]] = []
        self.saving = saving
        self._stack: list[str] = [saving] if saving else []  # segments being checked
        self._heights: list[int] = []  # deepest nesting seen below each of them
        self._entry = ""  # request path of the outermost segment selector being followed
        self._done: dict[str, tuple[tree.SavedSegment, int]] = {}  # key → (segment, height)
        self._sizes: dict[str, tuple[int, int]] = {}  # key → its expanded (nodes, values)
        self.nodes = 0
        self.values = 0

    def error(self, path: str, message: str) -> None:
        self.errors.append({"path": path, "message": message})

    def finish(self) -> None:
        """Every name the selection uses must exist; then every problem is a 422."""
        self.errors.extend(self.references.unknown())
        self.raise_errors()

    def names(self, kind: NameKind, given: list, path: str, funnel: str = "") -> None:
        """The names (ids) at `path`[i] must exist (stages: in `funnel`)."""
        for i, name in enumerate(given):
            self.references.add(kind, name, f"{path}[{i}]", funnel)

    def raise_errors(self) -> None:
        if self.errors:
            first = self.errors[0]
            raise Invalid(f"{first['path']}: {first['message']}", details=self.errors)

    def _count(self, nodes: int, values: int, path: str) -> None:
        """Add to the expanded size; past a limit, stop checking at once (a 422)."""
        self.nodes += nodes
        self.values += values
        if self.nodes > MAX_EXPANDED_NODES:
            self.error(
                self._entry or path,
                f"the selection expands to more than {MAX_EXPANDED_NODES} conditions "
                "(a saved segment counts every time it is used)",
            )
        elif self.values > MAX_EXPANDED_VALUES:
            self.error(
                self._entry or path,
                f"the selection holds more than {MAX_EXPANDED_VALUES} values in all "
                "(a saved segment counts every time it is used)",
            )
        else:
            return
        self.raise_errors()

    # --- the tree ---------------------------------------------------------------------

    def body(self, selection: s.Selection, prefix: str) -> tree.Body:
        dot = f"{prefix}." if prefix else ""
        return tree.Body(
            include=self.each(selection.include, f"{dot}include"),
            exclude=self.each(selection.exclude, f"{dot}exclude"),
            filter=None
            if selection.filter is None
            else self.condition(selection.filter, f"{dot}filter"),
        )

    def condition(self, parsed: Any, path: str) -> tree.Node:
        node = tree.BY_PARSED[type(parsed)].checked(parsed, self, path)
        self._count(1, _values(node), path)
        return node

    def each(self, items: list, path: str) -> tuple[tree.Node, ...]:
        return tuple(self.condition(item, f"{path}[{i}]") for i, item in enumerate(items))

    def test(
        self, parsed: Any, kind: Kind, path: str, choices=(), extra_ops=()
    ) -> tuple[Operator, Any]:
        """The operator and the parsed operand of a field, detail or event test."""
        op = OPERATORS[parsed.op]
        allowed = operators_for(kind, extra_ops)
        if op.name not in allowed:
            self.error(
                f"{path}.op",
                f"operator '{op.name}' does not apply here; use one of "
                f"{', '.join(sorted(allowed))}",
            )
            return op, None
        try:
            return op, op.operand.parse(op.name, kind, parsed.value, choices)
        except OperandError as exc:
            self.error(f"{path}.value", str(exc))
            return op, None

    # --- saved segments ---------------------------------------------------------------

    def segments(self, keys: tuple[str, ...], path: str) -> tuple[tree.SavedSegment, ...]:
        """The checked saved segments named at `path`. A problem inside one (or in one it
        uses) is reported at the path of the selector in the request that led there."""
        entry = self._entry or path
        found = (self._segment(key, entry) for key in keys)
        return tuple(segment for segment in found if segment is not None)

    def _segment(self, key: str, entry: str) -> tree.SavedSegment | None:
        if key in self._stack:
            self.error(entry, self._cycle([*self._stack[self._stack.index(key) :], key]))
            return None
        done = self._done.get(key)
        height = done[1] if done else 1
        if len(self._stack) + height > MAX_SEGMENT_DEPTH:
            self.error(entry, f"segments nest deeper than {MAX_SEGMENT_DEPTH}")
            return None
        if done is None:
            nodes, values = self.nodes, self.values
            done = self._check_stored(key, entry)
            if done is None:
                return None
            self._done[key] = done
            self._sizes[key] = (self.nodes - nodes, self.values - values)
        else:
            self._count(*self._sizes[key], entry)
        if self._heights:
            self._heights[-1] = max(self._heights[-1], done[1])
        return done[0]

    def _check_stored(self, key: str, entry: str) -> tuple[tree.SavedSegment, int] | None:
        stored = self.source(key)
        if stored is None:
            self.error(entry, f"unknown segment '{key}'")
            return None
        prefix = f"segment '{key}'"
        try:
            parsed = s.Selection.model_validate(stored)
        except ValidationError as exc:  # saved before a schema change: say so, never 500
            self.errors.extend(pydantic_details(exc.errors(), prefix=prefix))
            return None
        outer = self._entry
        self._stack.append(key)
        self._heights.append(0)
        self._entry = entry
        try:
            body = self.body(parsed, prefix)
        finally:
            self._stack.pop()
            below = self._heights.pop()
            self._entry = outer
        return tree.SavedSegment(key, body), below + 1

    def _cycle(self, keys: list[str]) -> str:
        path = " → ".join(keys)
        if keys[0] != self.saving:
            return f"segments refer to each other in a cycle: {path}"
        if len(keys) == 2:
            return "a segment may not refer to itself"
        return f"a segment may not refer to itself through others: {path}"


def _values(node: tree.Node) -> int:
    """The values a node holds in lists: names of a selector, an `in` list, a pair."""
    count = 0
    for f in fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        if isinstance(value, tuple) and not (
            value and isinstance(value[0], tree.Node | tree.SavedSegment)
        ):
            count += len(value)
    return count


@dataclass(frozen=True)
class Reference:
    kind: NameKind
    name: Any  # as given (a name, or a mailing id)
    path: str
    funnel: str = ""  # a stage's funnel, as given

    @property
    def key(self):
        if self.kind == "mailing":
            return self.name
        if self.kind == "stage":
            return (name_key(self.funnel), name_key(self.name))
        return name_key(self.name)


class References:
    """The names a selection uses, looked up together at the end of the check: one query
    a kind, and names to suggest only when one is unknown."""

    def __init__(self, source: NameSource | None):
        self.source = source
        self.found: list[Reference] = []
        self.ids: dict[NameKind, Mapping] = {}  # kind → {key: id} of those that exist
        self._names: dict[tuple, dict[str, str]] = {}  # (kind, funnel key) → key → name
        self._offered: dict[tuple, str] = {}  # (kind, funnel key, key) → what say() offers

    def add(self, kind: NameKind, name: Any, path: str, funnel: str = "") -> None:
        if self.source is not None:
            self.found.append(Reference(kind, name, path, funnel))

    def unknown(self) -> list[dict[str, str]]:
        if not self.found:
            return []
        assert self.source is not None
        funnels = {r.key for r in self.found if r.kind == "funnel"}
        existing = self.ids = {
            kind: self.source.existing(kind, {r.key for r in self.found if r.kind == kind})
            for kind in {r.kind for r in self.found}
        }
        errors = []
        for ref in self.found:
            if ref.key in existing[ref.kind]:
                continue
            if ref.kind == "stage" and ref.key[0] not in existing.get("funnel", funnels):
                continue  # its funnel is unknown: said once, at the funnel
            errors.append({"path": ref.path, "message": self.say(ref)})
        return errors

    def say(self, ref: Reference) -> str:
        if ref.kind == "mailing":
            return f"no mailing {ref.name}"
        where = f" in funnel '{ref.funnel}'" if ref.kind == "stage" else ""
        return f"no {ref.kind} named '{ref.name}'{where}{self._offer(ref)}"

    def _offer(self, ref: Reference) -> str:
        """ "; did you mean …?" with the closest existing names: looked up once a kind (a
        funnel's stages), worked out once a name, and for the first MAX_OFFERS names only
        (10,000 unknown tags in one list must not take 10,000 searches)."""
        assert self.source is not None
        funnel = name_key(ref.funnel) if ref.funnel else None
        key = (ref.kind, funnel, name_key(ref.name))
        if key in self._offered:
            return self._offered[key]
        if len(self._offered) >= MAX_OFFERS:
            return ""
        by_key = self._names.get(key[:2])
        if by_key is None:
            by_key = {name_key(n): n for n in self.source.names(ref.kind, funnel)}
            self._names[key[:2]] = by_key
        close = difflib.get_close_matches(key[2], list(by_key), n=3, cutoff=0.6)
        offered = [f"'{by_key[k]}'" for k in close]
        if not offered:
            either = ""
        elif len(offered) == 1:
            either = f"; did you mean {offered[0]}?"
        else:
            either = f"; did you mean {', '.join(offered[:-1])} or {offered[-1]}?"
        self._offered[key] = either
        return either


class Bind(Visitor[tree.Node]):
    """The checked tree again, each selector given the ids of the names it holds (found
    by References: every name exists once the check has passed). Saved segments stay
    shared: one bound segment however often it is used."""

    def __init__(self, ids: Mapping[NameKind, Mapping]):
        self.ids = ids
        self._segments: dict[int, tree.SavedSegment] = {}

    def _of(self, kind: NameKind, keys) -> tuple[int, ...]:
        found = self.ids.get(kind, {})
        return tuple(found[key] for key in keys)

    def body(self, body: tree.Body) -> tree.Body:
        return tree.Body(
            include=tuple(self.visit(n) for n in body.include),
            exclude=tuple(self.visit(n) for n in body.exclude),
            filter=None if body.filter is None else self.visit(body.filter),
        )

    def visit_and(self, node: tree.And) -> tree.Node:
        return tree.And(tuple(self.visit(n) for n in node.items))

    def visit_or(self, node: tree.Or) -> tree.Node:
        return tree.Or(tuple(self.visit(n) for n in node.items))

    def visit_not(self, node: tree.Not) -> tree.Node:
        return tree.Not(self.visit(node.item))

    def visit_tag_selector(self, node: tree.TagSelector) -> tree.Node:
        return replace(node, ids=self._of("tag", node.keys))

    def visit_funnel_selector(self, node: tree.FunnelSelector) -> tree.Node:
        (funnel_id,) = self._of("funnel", [node.funnel])
        stages = None
        if node.stages is not None:
            stages = self._of("stage", [(node.funnel, stage) for stage in node.stages])
        return replace(node, funnel_id=funnel_id, stage_ids=stages)

    def visit_mailing_selector(self, node: tree.MailingSelector) -> tree.Node:
        return node  # named by id already

    def visit_group_selector(self, node: tree.GroupSelector) -> tree.Node:
        return replace(node, ids=self._of("group", node.keys))

    def visit_segment_selector(self, node: tree.SegmentSelector) -> tree.Node:
        return tree.SegmentSelector(tuple(self.segment(s) for s in node.segments))

    def segment(self, segment: tree.SavedSegment) -> tree.SavedSegment:
        bound = self._segments.get(id(segment))
        if bound is None:
            bound = self._segments[id(segment)] = tree.SavedSegment(
                segment.key, self.body(segment.body)
            )
        return bound

    def visit_field_test(self, node: tree.FieldTest) -> tree.Node:
        return node

    def visit_detail_test(self, node: tree.DetailTest) -> tree.Node:
        return node

    def visit_event_test(self, node: tree.EventTest) -> tree.Node:
        return node
