"""An app's route table as (METHOD, path) pairs, for tests that must cover every route."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

__all__: list[str] = []


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    """Every method and path the app answers (HEAD aside), including included routers."""
    table: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        if route.path is None or route.methods is None:
            continue  # a mount (static files): not a route of the app's own
        table |= {(method, route.path) for method in route.methods if method != "HEAD"}
    return table


def body_fields(app: FastAPI) -> dict[tuple[str, str], set[str]]:
    """The body (form) fields each route reads, its dependencies' included, by route."""
    fields: dict[tuple[str, str], set[str]] = {}
    for route in iter_route_contexts(app.routes):
        if route.path is None or route.methods is None:
            continue
        names = _body_field_names(route.dependant)
        fields |= {(method, route.path): names for method in route.methods if method != "HEAD"}
    return fields


def _body_field_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.body_params}
    for dependency in dependant.dependencies:
        names |= _body_field_names(dependency)
    return names
