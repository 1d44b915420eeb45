"""The base of every pass over the checked tree (compile, the test oracle, …).

A pass has one method per node kind, named after it (`visit_tag_selector` for
tree.TagSelector). A subclass that lacks one fails when it is defined, at import, instead of
at the first request that uses the forgotten kind; a silently dropped node inside a NOT
would flip the answer.
"""

from typing import Any, Generic, TypeVar

from app.selection.tree import KINDS, Node

R = TypeVar("R")


class Visitor(Generic[R]):
    def __init_subclass__(cls, abstract: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        missing = [k.visit_name for k in KINDS if not callable(getattr(cls, k.visit_name, None))]
        if missing:
            raise TypeError(f"{cls.__name__} does not handle {', '.join(missing)}")

    def visit(self, node: Node, *args: Any) -> R:
        return getattr(self, node.visit_name)(node, *args)
