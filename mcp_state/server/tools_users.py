"""User tools: accounts (never their password hashes or tokens) and dataset permissions.

Changes to users and permissions need the ``admin`` scope over HTTP.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mcp_state.errors import InvalidArgumentError
from mcp_state.repositories.users import public_user
from mcp_state.server.audit import Call, Toolset
from mcp_state.server.paging import after_of, page
from mcp_state.server.shapes import (
    DEFAULT_LIMIT,
    Cursor,
    Dataset,
    Deleted,
    Limit,
    PermissionPage,
    UserId,
    UserPage,
    found,
)
from mcp_state.types import Access, DatasetPermission, PublicUser, Role

users = Toolset("users", hint="Call list_users or find_user_by_email to find the user's id.")

Email = Annotated[
    str, Field(min_length=3, max_length=320, description="Email address, e.g. ana@example.com.")
]
NewName = Annotated[str | None, Field(max_length=200, description="Display name.")]


@users.read("Get user")
def get_user(call: Call, user_id: UserId) -> PublicUser:
    """Get one user's account (id, email, name, role, whether a password is set) by id."""
    return public_user(found(call.repos.users.get_by_id(user_id), "user", user_id))


@users.read("Find user by email")
def find_user_by_email(call: Call, email: Email) -> PublicUser:
    """Find a user by email address (case-insensitive), e.g. to learn their id."""
    return public_user(found(call.repos.users.get_by_email(email), "user with email", email))


@users.read("List users")
def list_users(
    call: Call,
    role: Annotated[Role | None, Field(description="Only users with this role.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> UserPage:
    """List user accounts by email, optionally only one role."""
    repo = call.repos.users
    rows = repo.list_all(role=role, limit=limit + 1, after=after_of("users", cursor))
    return page(rows, limit, kind="users", key=repo.key_of, total=repo.count(role=role), shape=public_user)


@users.write("Create user", resource="id", destructive=False, idempotent=False, scope="admin")
def create_user(
    call: Call,
    id: Annotated[str, Field(min_length=1, max_length=1024, description="New user's id, e.g. their email.")],
    email: Email,
    name: NewName = None,
    role: Annotated[Role, Field(description="admin, analyst or viewer.")] = "analyst",
) -> PublicUser:
    """Create a user account without a password (they set one in the app); fails if the id or email exists."""
    return public_user(call.repos.users.create(id, email, name, role=role))


@users.write("Update user", resource="user_id", destructive=True, idempotent=True, scope="admin")
def update_user(
    call: Call,
    user_id: UserId,
    email: Annotated[Email | None, Field(description="New email address.")] = None,
    name: NewName = None,
    role: Annotated[Role | None, Field(description="New role.")] = None,
) -> PublicUser:
    """Change a user's email, name or role (fields left out stay as they are)."""
    changes = {
        key: value for key, value in (("email", email), ("name", name), ("role", role)) if value is not None
    }
    if not changes:
        raise InvalidArgumentError("nothing to change: give at least one of email, name or role")
    return public_user(call.repos.users.update(user_id, **changes))


@users.write("Delete user", resource="user_id", destructive=True, idempotent=True, scope="admin")
def delete_user(call: Call, user_id: UserId) -> Deleted:
    """Delete a user with their dataset permissions, sync settings and Telegram link."""
    call.repos.users.delete(user_id)
    return {"deleted": True, "id": user_id}


@users.read("List dataset permissions")
def list_dataset_permissions(
    call: Call,
    user_id: Annotated[
        str | None, Field(max_length=1024, description="Only this user's permissions.")
    ] = None,
    dataset: Annotated[
        str | None, Field(max_length=1024, description="Only permissions on this dataset.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> PermissionPage:
    """List who has which access (read, write, admin) to which dataset; filter by user or dataset."""
    repo = call.repos.permissions
    rows = repo.list_all(user_id, dataset, limit=limit + 1, after=after_of("permissions", cursor))
    return page(rows, limit, kind="permissions", key=repo.key_of, total=repo.count(user_id, dataset))


@users.write(
    "Grant dataset access",
    resource=lambda args, _: f"{args['user_id']}/{args['dataset']}",
    destructive=True,
    idempotent=True,
    scope="admin",
)
def grant_dataset_access(
    call: Call,
    user_id: UserId,
    dataset: Dataset,
    access: Annotated[Access, Field(description="read < write < admin.")] = "read",
) -> DatasetPermission:
    """Give an existing user an access level on a dataset, replacing the level they had."""
    found(call.repos.users.get_by_id(user_id), "user", user_id)
    return call.repos.permissions.grant(user_id, dataset, access)


@users.write(
    "Revoke dataset access",
    resource=lambda args, _: f"{args['user_id']}/{args['dataset']}",
    destructive=True,
    idempotent=True,
    scope="admin",
    hint="Call list_dataset_permissions to see who has access.",
)
def revoke_dataset_access(call: Call, user_id: UserId, dataset: Dataset) -> Deleted:
    """Remove a user's access to a dataset."""
    call.repos.permissions.revoke(user_id, dataset)
    return {"deleted": True, "id": f"{user_id}/{dataset}"}
