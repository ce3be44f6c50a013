"""The real ChatService for surface tests: scripted model, SQLite, nsjail, a given script."""

from __future__ import annotations

from pathlib import Path

from bot.config import Policy
from bot.ports import ChatService
from tests.conftest import require_real


async def real_service(base: Path, script: str, policy: Policy | None = None) -> ChatService:
    """``build_chat_service`` as ``opsloop serve`` builds it, or skip (laptop) / fail (CI)."""
    from bot.cli.bootstrap import build_chat_service
    from bot.settings import Settings
    from sandbox.check import diagnose

    diagnosis = await diagnose()
    require_real(diagnosis.jails_work, f"nsjail cannot run here: {diagnosis.problems}")
    data_dir = base / "data"
    data_dir.mkdir()
    (base / "script.yaml").write_text(script, encoding="utf-8")
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'opsloop.sqlite3'}",
        provider="scripted",
        model=str(base / "script.yaml"),
        sandbox="nsjail",
    )
    return build_chat_service(settings=settings, policy=policy or Policy())
