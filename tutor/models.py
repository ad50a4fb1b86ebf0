"""The tutoring data model.

Table and column names follow the original design so that SQL, reports and other tools
(which write these tables with plain SQL) stay readable; every column added since has a
server default or is nullable, and every timestamp is ``timestamptz`` (UTC).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from foundation.extensions import db

USER_ROLES = ("student", "teacher", "admin")
SESSION_STATUSES = ("active", "ended", "abandoned")
MESSAGE_ROLES = ("student", "tutor")
MESSAGE_STATUSES = ("queued", "streaming", "done", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def now_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", USER_ROLES), name="role"),
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        UniqueConstraint("embed_site", "external_id", name="uq_users_embed_site_external_id"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), nullable=False, server_default="student")
    display_name: Mapped[str] = mapped_column(String(120), nullable=False, server_default="")
    grade_level: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = now_column()
    # Students who arrive through an embedding site are known by that site's id for them, per
    # site (two portals' student "42" are two students).
    embed_site: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(200))
    # Part of every login's identity (session and remember cookies): raising it (logout,
    # a new password) ends every login of this user, on every device.
    login_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1", default=1)

    def get_id(self) -> str:
        return f"{self.id}:{self.login_version}"

    sessions: Mapped[list[TutoringSession]] = relationship(
        back_populates="student", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"


class TutoringSession(db.Model):
    """A tutoring session (table ``sessions``; not Flask's cookie session)."""

    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint(_in("status", SESSION_STATUSES), name="status"),
        CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),
        Index("ix_sessions_created_at", "created_at"),
        Index("ix_sessions_student_id_created_at", "student_id", "created_at"),
        Index("ix_sessions_active", "created_at", postgresql_where=text("status = 'active'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid, primary_key=True, server_default=text("gen_random_uuid()"), default=uuid.uuid4
    )
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    subject: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = now_column()
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="active")
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    # The hidden solve step (tutor.llm_judge): the model's final answer to the problem in the
    # student message ``solved_message_id``; never shown to the student, used by the guardrail.
    solved_message_id: Mapped[int | None] = mapped_column(BigInteger)
    solved_answer: Mapped[str | None] = mapped_column(String(200))

    student: Mapped[User] = relationship(back_populates="sessions")
    topics: Mapped[list[SessionTopic]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    messages: Mapped[list[Message]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="Message.id"
    )


class SessionTopic(db.Model):
    __tablename__ = "session_topics"

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(120), primary_key=True)

    @staticmethod
    def clean(topic: str) -> str:
        """Topics are stored trimmed and lower-case so counts group correctly."""
        return " ".join(topic.split()).lower()


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("role", MESSAGE_ROLES), name="role"),
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        Index("ix_messages_session_id_id", "session_id", "id"),
        Index("ix_messages_created_at", "created_at"),
        Index("ix_messages_pending", "created_at", postgresql_where=text("status IN ('queued', 'streaming')")),
        CheckConstraint("feedback IN (-1, 1)", name="feedback"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="done")
    created_at: Mapped[datetime] = now_column()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[int | None] = mapped_column(Integer)  # what the student waited: question to last word
    generation_ms: Mapped[int | None] = mapped_column(Integer)  # the model's own time, answering attempt
    first_token_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false(), default=False)
    cut_short: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false(), default=False)
    provider: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0", default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # The guardrail's verdict on a finished tutor reply: does it give away the final answer
    # to the problem the student brought? Null for student messages and unchecked replies.
    answer_revealed: Mapped[bool | None] = mapped_column(Boolean)
    # The student's thumbs on a tutor reply: +1 up, -1 down, NULL none (the quality chart counts them).
    feedback: Mapped[int | None] = mapped_column(SmallInteger)
    # The student pressed Stop while the reply was being written; it keeps what was written.
    stopped: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false(), default=False)


ATTEMPT_SOURCES = ("problem", "check", "quiz")
GRADERS = ("sympy", "text", "model")


class Attempt(db.Model):
    """One graded answer: the evidence mastery is computed from (``docs/ANALYTICS.md``).

    ``item`` is the problem or question as asked (tidied); a student's first answer to an
    item is the one that counts, so (student, subject, topic, item) is unique and later
    answers to the same item are not stored.
    """

    __tablename__ = "attempts"
    __table_args__ = (
        CheckConstraint(_in("source", ATTEMPT_SOURCES), name="source"),
        CheckConstraint(_in("graded_by", GRADERS), name="graded_by"),
        UniqueConstraint("student_id", "subject", "topic", "item", name="uq_attempts_student_item"),
        Index("ix_attempts_student_id_subject_topic_created_at", "student_id", "subject", "topic", "created_at"),
        Index("ix_attempts_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(64), nullable=False)
    topic: Mapped[str] = mapped_column(String(120), nullable=False)
    item: Mapped[str] = mapped_column(String(300), nullable=False)
    answer: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    correct: Mapped[bool] = mapped_column(Boolean, nullable=False)
    hints_seen: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0", default=0)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    graded_by: Mapped[str] = mapped_column(String(16), nullable=False)
    provider: Mapped[str | None] = mapped_column(String(32))
    verdict: Mapped[str | None] = mapped_column(Text)  # the model's own words, when a model graded
    created_at: Mapped[datetime] = now_column()


class Mastery(db.Model):
    """A student's current P(known) for one topic (Bayesian Knowledge Tracing), kept up to
    date after every attempt and recomputed when the topic's parameters are refitted."""

    __tablename__ = "mastery"

    student_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(120), primary_key=True)
    p_known: Mapped[float] = mapped_column(Float, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0", default=0)
    correct: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0", default=0)
    last_attempt: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BktParams(db.Model):
    """Fitted BKT parameters of one topic (the nightly refit); a topic without a row, or
    with too few attempts, uses the defaults in ``tutor.mastery``."""

    __tablename__ = "bkt_params"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(120), primary_key=True)
    p_init: Mapped[float] = mapped_column(Float, nullable=False)
    p_learn: Mapped[float] = mapped_column(Float, nullable=False)
    p_guess: Mapped[float] = mapped_column(Float, nullable=False)
    p_slip: Mapped[float] = mapped_column(Float, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    students: Mapped[int] = mapped_column(Integer, nullable=False)
    fitted_at: Mapped[datetime] = now_column()


JUDGEMENT_STATUSES = ("rated", "unrated")


class ReplyJudgement(db.Model):
    """The LLM judge's ratings of one finished tutor reply on the MRBench dimensions.

    ``status`` 'unrated': the model's answer could not be read (or the call failed); the
    scores are then NULL and ``raw`` keeps what it said. Levels: 0 no, 1 to some extent, 2 yes.
    """

    __tablename__ = "reply_judgements"
    __table_args__ = (
        CheckConstraint(_in("status", JUDGEMENT_STATUSES), name="status"),
        Index("ix_reply_judgements_judged_at", "judged_at"),  # the dashboard's judge table reads a range
    )

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reveals_answer: Mapped[bool | None] = mapped_column(Boolean)
    identifies_mistake: Mapped[int | None] = mapped_column(SmallInteger)
    gives_guidance: Mapped[int | None] = mapped_column(SmallInteger)
    actionable: Mapped[int | None] = mapped_column(SmallInteger)
    model: Mapped[str | None] = mapped_column(String(128))
    raw: Mapped[str | None] = mapped_column(Text)
    judged_at: Mapped[datetime] = now_column()


class SchoolClass(db.Model):
    """A teacher's class (table ``classes``): students join it with its code or are imported."""

    __tablename__ = "classes"
    __table_args__ = (
        UniqueConstraint("join_code", name="uq_classes_join_code"),
        Index("ix_classes_teacher_id", "teacher_id"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(64))
    teacher_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    join_code: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = now_column()


class ClassMember(db.Model):
    """A student in a class (a student can be in several)."""

    __tablename__ = "class_members"
    __table_args__ = (Index("ix_class_members_student_id", "student_id"),)

    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    joined_at: Mapped[datetime] = now_column()


class TranscriptRead(db.Model):
    """The audit log of conversation review: who read whose transcript, when.

    Kept when either account is deleted (the ids become NULL; the e-mails stay as they were).
    """

    __tablename__ = "transcript_reads"
    __table_args__ = (Index("ix_transcript_reads_read_at", "read_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    read_at: Mapped[datetime] = now_column()
    reader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reader_email: Mapped[str] = mapped_column(String(320), nullable=False)
    student_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    student_email: Mapped[str] = mapped_column(String(320), nullable=False)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    class_id: Mapped[int | None] = mapped_column(Integer)
    via: Mapped[str] = mapped_column(String(16), nullable=False)  # "page" or "api"
