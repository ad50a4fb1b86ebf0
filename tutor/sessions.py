"""Reading a student's sessions for the pages: "My sessions" and resuming an embed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from foundation.extensions import db

from .curriculum import get_curriculum
from .models import Message, SessionTopic, TutoringSession

TITLE_CHARS = 80


@dataclass(frozen=True)
class PastSession:
    id: uuid.UUID
    subject: str  # the subject's name as the curriculum writes it
    status: str
    created_at: datetime
    satisfaction: int | None
    title: str  # the student's first message, shortened
    topics: tuple[str, ...]  # topic names


def past_sessions(student_id: int, limit: int = 50) -> list[PastSession]:
    """The student's newest sessions that have at least one message of theirs (a session
    opened and left empty is not shown)."""
    first = (
        select(Message.content)
        .where(Message.session_id == TutoringSession.id, Message.role == "student")
        .order_by(Message.id)
        .limit(1)
        .correlate(TutoringSession)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(TutoringSession, first.label("first"))
        .where(TutoringSession.student_id == student_id, first.is_not(None))
        .order_by(TutoringSession.created_at.desc())
        .limit(limit)
    ).all()
    ids = [s.id for s, _ in rows]
    topics: dict[uuid.UUID, list[str]] = {}
    if ids:
        for sid, topic in db.session.execute(
            select(SessionTopic.session_id, SessionTopic.topic).where(SessionTopic.session_id.in_(ids))
        ):
            topics.setdefault(sid, []).append(topic)
    curriculum = get_curriculum()
    out = []
    for s, text in rows:
        subject = curriculum.subject(s.subject)
        names = sorted(
            (t.name if (t := subject.topic(tid) if subject else None) else tid) for tid in topics.get(s.id, [])
        )
        title = " ".join(text.split())
        if len(title) > TITLE_CHARS:
            title = title[: TITLE_CHARS - 1].rstrip() + "…"
        out.append(
            PastSession(
                s.id,
                subject.name if subject else s.subject,
                s.status,
                s.created_at,
                s.satisfaction,
                title,
                tuple(names),
            )
        )
    return out


def latest_active_session(student_id: int, subject: str) -> uuid.UUID | None:
    """The student's newest active session of ``subject``, if any."""
    return db.session.scalar(
        select(TutoringSession.id)
        .where(
            TutoringSession.student_id == student_id,
            TutoringSession.subject == subject,
            TutoringSession.status == "active",
        )
        .order_by(TutoringSession.created_at.desc())
        .limit(1)
    )
