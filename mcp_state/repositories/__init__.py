"""Repository layer: one repository per domain, all reading and writing through the gateway."""

from mcp_state.db import get_analytics_db, get_system_db
from mcp_state.repositories.audit import AuditRepository
from mcp_state.repositories.knowledge import KnowledgeRepository
from mcp_state.repositories.notifications import PendingCodeRepository, ScriptRepository, TelegramRepository
from mcp_state.repositories.permissions import DatasetPermissionRepository
from mcp_state.repositories.profiles import ProfileRepository
from mcp_state.repositories.sync_settings import SyncSettingsRepository
from mcp_state.repositories.sync_state import SyncStateRepository
from mcp_state.repositories.table_registry import TableRegistryRepository
from mcp_state.repositories.users import UserRepository

__all__ = [
    "AuditRepository",
    "DatasetPermissionRepository",
    "KnowledgeRepository",
    "PendingCodeRepository",
    "ProfileRepository",
    "ScriptRepository",
    "SyncSettingsRepository",
    "SyncStateRepository",
    "TableRegistryRepository",
    "TelegramRepository",
    "UserRepository",
    "get_analytics_db",
    "get_system_db",
]
