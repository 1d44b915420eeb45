from fastapi import APIRouter, Response

from app.api.deps import AccountDep, ReadConn, ReadRetryingRoute, WriteConn
from app.errors import IN_USE, NAME_TAKEN, RESPONSES
from app.rules import service
from app.rules.schemas import Rule, RuleIn
from app.types import PathId

router = APIRouter(
    prefix="/v1/rules", tags=["rules"], responses=RESPONSES, route_class=ReadRetryingRoute
)


@router.post(
    "", operation_id="create_rule", responses=NAME_TAKEN, response_model=Rule, status_code=201
)
def create_rule(body: RuleIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """A rule; its condition and actions are checked as at a job's submit (422 with a path
    for each problem), and a rule may not run itself through `run_rule`."""
    return service.create_rule(conn, account_id, body)


@router.get("", operation_id="list_rules", response_model=list[Rule])
def list_rules(account_id: AccountDep, conn: ReadConn) -> list[dict]:
    """The account's rules, oldest first."""
    return service.list_rules(conn, account_id)


@router.get("/{rule_id}", operation_id="get_rule", response_model=Rule)
def get_rule(rule_id: PathId, account_id: AccountDep, conn: ReadConn) -> dict:
    """One rule."""
    return service.get_rule(conn, account_id, rule_id)


@router.put("/{rule_id}", operation_id="update_rule", responses=NAME_TAKEN, response_model=Rule)
def update_rule(rule_id: PathId, body: RuleIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """Replaces the rule's name, condition and actions, checked as at its creation."""
    return service.update_rule(conn, account_id, rule_id, body)


@router.delete("/{rule_id}", operation_id="delete_rule", responses=IN_USE, status_code=204)
def delete_rule(rule_id: PathId, account_id: AccountDep, conn: WriteConn) -> Response:
    """Deletes the rule; 409 `in_use`, naming each, while another rule runs it (`run_rule`)."""
    service.delete_rule(conn, account_id, rule_id)
    return Response(status_code=204)
