"""compact rollups: students, topics and hours as arrays in one row per day x subject x grade

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 23:20:00

``rollup_student_day`` held one row per student, day and subject (about one row per session),
``rollup_topic_day`` one per topic and ``rollup_hour`` one per hour, so the nightly rollup
spent most of its time inserting rows. ``rollup_students``, ``rollup_topics`` and
``rollup_hours`` hold the same figures as parallel arrays in one row per day × subject ×
grade, and views with the old names unnest them, so queries written against the old tables
keep working and read the same rows.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

VIEWS = {
    "rollup_student_day": """
        SELECT r.date, u.student_id, r.subject, r.grade_level, u.sessions, u.duration_sum, u.duration_count,
               u.rating_sum, u.rating_count
        FROM rollup_students r,
             unnest(r.student_ids, r.sessions, r.duration_sums, r.duration_counts, r.rating_sums, r.rating_counts)
                 AS u(student_id, sessions, duration_sum, duration_count, rating_sum, rating_count)
    """,
    "rollup_topic_day": """
        SELECT r.date, r.subject, r.grade_level, u.topic, u.sessions
        FROM rollup_topics r, unnest(r.topics, r.sessions) AS u(topic, sessions)
    """,
    "rollup_hour": """
        SELECT r.date, r.subject, r.grade_level, (u.hour - 1)::smallint AS hour, r.weekday, u.sessions
        FROM rollup_hours r, unnest(r.sessions) WITH ORDINALITY AS u(sessions, hour)
        WHERE u.sessions > 0
    """,
}
COMPACT = {"rollup_student_day": "rollup_students", "rollup_topic_day": "rollup_topics", "rollup_hour": "rollup_hours"}

# The arrays are a few kB a row, so PostgreSQL compresses them: lz4 costs a fraction of the
# default pglz's time on every nightly insert. A server built without lz4 keeps pglz.
LZ4 = """
DO $$
BEGIN
    ALTER TABLE rollup_students
        ALTER COLUMN student_ids SET COMPRESSION lz4, ALTER COLUMN sessions SET COMPRESSION lz4,
        ALTER COLUMN duration_sums SET COMPRESSION lz4, ALTER COLUMN duration_counts SET COMPRESSION lz4,
        ALTER COLUMN rating_sums SET COMPRESSION lz4, ALTER COLUMN rating_counts SET COMPRESSION lz4;
    ALTER TABLE rollup_daily ALTER COLUMN latency_hist SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 compression is not available: the rollup tables keep the default';
END
$$
"""


def _key():
    return [
        sa.Column('date', sa.Date(), nullable=False),
        sa.Column('subject', sa.String(length=64), nullable=False),
        sa.Column('grade_level', sa.SmallInteger(), nullable=False),
    ]


def upgrade():
    op.create_table('rollup_students', *_key(),
    sa.Column('student_ids', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.Column('sessions', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.Column('duration_sums', postgresql.ARRAY(sa.BigInteger()), nullable=False),
    sa.Column('duration_counts', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.Column('rating_sums', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.Column('rating_counts', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.PrimaryKeyConstraint('date', 'subject', 'grade_level', name=op.f('pk_rollup_students'))
    )
    op.create_table('rollup_topics', *_key(),
    sa.Column('topics', postgresql.ARRAY(sa.String(length=120)), nullable=False),
    sa.Column('sessions', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.PrimaryKeyConstraint('date', 'subject', 'grade_level', name=op.f('pk_rollup_topics'))
    )
    op.create_table('rollup_hours', *_key(),
    sa.Column('weekday', sa.SmallInteger(), nullable=False),
    sa.Column('sessions', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.PrimaryKeyConstraint('date', 'subject', 'grade_level', name=op.f('pk_rollup_hours'))
    )
    op.execute(
        """
        INSERT INTO rollup_students
        SELECT date, subject, grade_level, array_agg(student_id ORDER BY student_id),
               array_agg(sessions ORDER BY student_id), array_agg(duration_sum ORDER BY student_id),
               array_agg(duration_count ORDER BY student_id), array_agg(rating_sum ORDER BY student_id),
               array_agg(rating_count ORDER BY student_id)
        FROM rollup_student_day GROUP BY date, subject, grade_level
        """
    )
    op.execute(
        """
        INSERT INTO rollup_topics
        SELECT date, subject, grade_level, array_agg(topic ORDER BY topic COLLATE "C"),
               array_agg(sessions ORDER BY topic COLLATE "C")
        FROM rollup_topic_day GROUP BY date, subject, grade_level
        """
    )
    op.execute(
        """
        INSERT INTO rollup_hours
        SELECT r.date, r.subject, r.grade_level, r.weekday, array_agg(COALESCE(h.sessions, 0) ORDER BY g.hour)
        FROM (SELECT DISTINCT date, subject, grade_level, weekday FROM rollup_hour) r
        CROSS JOIN generate_series(0, 23) AS g(hour)
        LEFT JOIN rollup_hour h ON (h.date, h.subject, h.grade_level, h.hour) = (r.date, r.subject, r.grade_level, g.hour)
        GROUP BY r.date, r.subject, r.grade_level, r.weekday
        """
    )
    for name in VIEWS:
        op.drop_table(name)
    for name, query in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {query}")
    op.execute(LZ4)


def downgrade():
    for name in VIEWS:
        op.execute(f"ALTER VIEW {name} RENAME TO {name}_v")
    op.execute("ALTER TABLE rollup_daily ALTER COLUMN latency_hist SET COMPRESSION default")
    op.create_table('rollup_student_day',
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('grade_level', sa.SmallInteger(), nullable=False),
    sa.Column('sessions', sa.Integer(), server_default='0', nullable=False),
    sa.Column('duration_sum', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('duration_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rating_sum', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rating_count', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('date', 'student_id', 'subject', name=op.f('pk_rollup_student_day'))
    )
    op.create_table('rollup_topic_day',
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('grade_level', sa.SmallInteger(), nullable=False),
    sa.Column('topic', sa.String(length=120), nullable=False),
    sa.Column('sessions', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('date', 'subject', 'grade_level', 'topic', name=op.f('pk_rollup_topic_day'))
    )
    op.create_table('rollup_hour',
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('grade_level', sa.SmallInteger(), nullable=False),
    sa.Column('hour', sa.SmallInteger(), nullable=False),
    sa.Column('weekday', sa.SmallInteger(), nullable=False),
    sa.Column('sessions', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('date', 'subject', 'grade_level', 'hour', name=op.f('pk_rollup_hour'))
    )
    for name in VIEWS:
        op.execute(f"INSERT INTO {name} SELECT * FROM {name}_v")
        op.execute(f"DROP VIEW {name}_v")
    for table in COMPACT.values():
        op.drop_table(table)
