"""Hand-built tutoring rows for analytics and dashboard tests, written with plain SQL
(as other tools would write them)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import text

from foundation.extensions import db


class Rows:
    """Users, sessions and messages; ``default_duration`` None makes sessions still active."""

    def __init__(self, default_duration: int | None = 600) -> None:
        self.n = 0
        self.default_duration = default_duration

    def user(self, grade: int | None = 7, name: str = "") -> int:
        self.n += 1
        with db.engine.begin() as conn:
            return conn.execute(
                text("INSERT INTO users (email, grade_level, display_name) VALUES (:e, :g, :n) RETURNING id"),
                {"e": f"student{self.n}@school.org", "g": grade, "n": name or f"Student {self.n}"},
            ).scalar_one()

    def session(
        self,
        student: int,
        created_at: datetime,
        subject: str = "mathematics",
        duration: int | None | str = "default",
        rating: int | None = None,
        topics: tuple[str, ...] = (),
        first_message: bool = True,
    ) -> uuid.UUID:
        """A session. Analytics count only sessions in which the student said something (opening
        the chat page starts one), so ``first_message`` adds the student's opening message at its
        start; tests that write a session's messages themselves pass False."""
        if duration == "default":
            duration = self.default_duration
        with db.engine.begin() as conn:
            sid = conn.execute(
                text(
                    "INSERT INTO sessions (student_id, subject, created_at, duration_seconds, satisfaction, status) "
                    "VALUES (:u, :s, :c, :d, :r, :st) RETURNING id"
                ),
                {
                    "u": student,
                    "s": subject,
                    "c": created_at,
                    "d": duration,
                    "r": rating,
                    "st": "active" if duration is None else "ended",
                },
            ).scalar_one()
            for topic in topics:
                conn.execute(text("INSERT INTO session_topics VALUES (:s, :t)"), {"s": sid, "t": topic})
        if first_message:
            self.message(sid, created_at)
        return sid

    def message(
        self,
        sid: uuid.UUID,
        created_at: datetime,
        role: str = "student",
        status: str = "done",
        latency: int | None = None,
        revealed: bool | None = None,
        **columns: object,
    ) -> None:
        """One message; ``columns`` sets other ``messages`` columns (``model``, ``prompt_tokens``, ...)."""
        values = {"session_id": sid, "role": role, "status": status, "created_at": created_at}
        values |= {"latency_ms": latency, "answer_revealed": revealed} | columns
        with db.engine.begin() as conn:
            conn.execute(
                text(f"INSERT INTO messages ({', '.join(values)}) VALUES ({', '.join(':' + k for k in values)})"),
                values,
            )

    def exchange(self, sid: uuid.UUID, created_at: datetime, latency: int = 1500, **reply) -> None:
        """A student message and the tutor's reply a minute later."""
        self.message(sid, created_at)
        self.message(sid, created_at + timedelta(minutes=1), role="tutor", latency=latency, **reply)
